//! The short, redacted preview of a WebSocket message that its `ws_message` event carries.
//!
//! At most [`PREVIEW_CHARS`] characters of the payload (text as is, binary as hex), then `…`.
//! Values that look like secrets are replaced by `***` before anything is cut: a JSON string
//! under a key naming one (`"password": "…"`, `"wifi_psk": …`, `"token"`, `"secret"`, `"auth…"`,
//! `"api_key"`) and the value after such a word and `=` or `:` in plain text (`PASS=…`).
//! Redaction is a best effort on names; a protocol that sends secrets under other names shows
//! them in the first characters of its messages.

use std::sync::LazyLock;

use regex::Regex;

use espsim_firmware::Frame;

/// The longest preview, in characters (before the `…` that marks a cut).
pub(crate) const PREVIEW_CHARS: usize = 64;

/// Binary payloads show this many bytes in hex.
const PREVIEW_BYTES: usize = 24;

/// The words that name a secret, as a regex alternation (ASCII, any case: cheap to compile and
/// to run, which matters because the first message of a run compiles it).
const SECRET_WORDS: &str = r"(?i-u:pass[a-z0-9_]*|pwd|psk|[a-z0-9_]*secret[a-z0-9_]*|[a-z0-9_]*token[a-z0-9_]*|auth[a-z0-9_]*|api_?key|[a-z0-9_]*_key)";

/// Whether a text may hold a secret at all: one fast literal search, so that the redacting
/// regexes run only on the few messages that mention one of the words.
static SECRET_HINT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i-u:pass|pwd|psk|secret|token|auth|key)").ok());

/// A JSON member whose key names a secret: the key, the colon and the string value.
static JSON_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"("[^"\\]*(?:{SECRET_WORDS})[^"\\]*"[ \t\r\n]*:[ \t\r\n]*)"(?:[^"\\]|\\.)*"?"#
    ))
    .ok()
});

/// A plain-text `word=value` / `word: value` whose word names a secret (and starts a word).
static TEXT_SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(^|[^A-Za-z0-9_])((?:{SECRET_WORDS})[ \t]*[=:][ \t]*)[^ \t\r\n,;&]+"
    ))
    .ok()
});

/// The preview of one message.
pub(crate) fn preview(frame: Frame<'_>) -> String {
    match frame {
        Frame::Text(text) => redacted_text(text),
        Frame::Binary(bytes) => {
            let hex: Vec<String> = bytes
                .iter()
                .take(PREVIEW_BYTES)
                .map(|b| format!("{b:02x}"))
                .collect();
            let cut = if bytes.len() > PREVIEW_BYTES {
                " …"
            } else {
                ""
            };
            format!("{}{cut}", hex.join(" "))
        }
    }
}

/// The text with secret values replaced, cut to [`PREVIEW_CHARS`]. Only a bounded head of the
/// text is looked at, so a megabyte message costs no more than a short one.
fn redacted_text(text: &str) -> String {
    // Enough of the head that a secret straddling the cut is still recognised.
    let head = prefix_chars(text, PREVIEW_CHARS * 4);
    let mut shown = head.to_owned();
    let hinted = SECRET_HINT.as_ref().is_none_or(|hint| hint.is_match(head));
    for (secret, hidden) in [
        (JSON_SECRET.as_ref(), "${1}\"***\""),
        (TEXT_SECRET.as_ref(), "${1}${2}***"),
    ] {
        let Some(secret) = secret.filter(|_| hinted) else {
            continue;
        };
        shown = secret.replace_all(&shown, hidden).into_owned();
    }
    let cut = prefix_chars(&shown, PREVIEW_CHARS);
    if cut.len() < shown.len() || head.len() < text.len() {
        format!("{cut}…")
    } else {
        shown
    }
}

/// The first `n` characters of `s`.
fn prefix_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(end, _)| &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> String {
        preview(Frame::Text(t))
    }

    #[test]
    fn short_messages_are_shown_whole() {
        assert_eq!(
            text(r#"{"cmd":"get","key":"temp"}"#),
            r#"{"cmd":"get","key":"temp"}"#
        );
        assert_eq!(text("LED=1"), "LED=1");
        assert_eq!(preview(Frame::Binary(&[0xa5, 0x01, 0xff])), "a5 01 ff");
    }

    #[test]
    fn long_messages_are_cut_on_a_character() {
        let long = "é".repeat(200);
        let shown = text(&long);
        assert_eq!(shown.chars().count(), PREVIEW_CHARS + 1);
        assert!(shown.ends_with('…'));
        let bin = preview(Frame::Binary(&[7; 100]));
        assert!(bin.ends_with(" …") && bin.matches("07").count() == PREVIEW_BYTES);
    }

    #[test]
    fn secrets_are_redacted() {
        for (message, hidden) in [
            (
                r#"{"type":"provision","ssid":"home","password":"hunter2"}"#,
                "hunter2",
            ),
            (r#"{"wifi": {"PSK": "s3cr3t!", "ssid": "x"}}"#, "s3cr3t!"),
            (r#"{"auth_token":"abc\"def"}"#, "def"),
            (r#"{"api_key": "k-123"}"#, "k-123"),
            ("WIFI ssid=home pass=hunter2", "hunter2"),
            ("TOKEN: t0k3n", "t0k3n"),
        ] {
            let shown = text(message);
            assert!(!shown.contains(hidden), "{message} → {shown}");
            assert!(shown.contains("***"), "{message} → {shown}");
        }
        // `key` alone is not a secret: `{"cmd":"get","key":"temp"}` is a protocol's address.
        assert!(text(r#"{"key":"temp"}"#).contains("temp"));
    }

    #[test]
    fn a_secret_cut_by_the_preview_is_still_hidden() {
        let message = format!(r#"{{"pad":"{}","password":"hunter2"}}"#, "x".repeat(40));
        let shown = text(&message);
        assert!(!shown.contains("hunt"), "{shown}");
    }
}
