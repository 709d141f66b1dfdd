//! `espsim validate` through the real binary: a rule with an extreme value is refused with its
//! bound (it used to pass, then stop the device port at run time).

mod support;

use support::espsim;

#[tokio::test]
async fn validate_refuses_extreme_rule_values_with_their_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.yaml");
    std::fs::write(
        &path,
        "name: huge\ndescription: A refuse window that never ends.\nfaults:\n  - { when: { at: 1s, for: 18446744073709551615s }, fault: refuse }\n  - { fault: { ws: oversize, bytes: 4611686018427387904 } }\nduration: 20s\n",
    )
    .expect("writes");
    let file = path.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = espsim(&["validate", file]).await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {file}: faults[0]: refuse: `when.for` is 5124095576030431h 15s; at most 24h"
        )),
        "{stderr}"
    );
    // The second rule's problem is listed too, not hidden behind the first.
    assert!(
        stderr.contains(&format!("error: {file}: faults[1]: "))
            && stderr.contains("`bytes` is 4611686018427387904"),
        "{stderr}"
    );
}
