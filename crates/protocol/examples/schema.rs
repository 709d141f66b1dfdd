//! Prints the JSON Schemas of both directions: `cargo run -p espsim-protocol --features schema --example schema`.

fn main() {
    #[cfg(feature = "schema")]
    {
        let both = serde_json::json!({
            "client_to_device": espsim_protocol::client_schema(),
            "device_to_client": espsim_protocol::device_schema(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&both).expect("schema is json")
        );
    }
    #[cfg(not(feature = "schema"))]
    eprintln!("build with --features schema");
}
