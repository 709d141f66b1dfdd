//! Strict YAML: unknown fields are errors, `yes`/`no` stay strings, every error names the file,
//! line and column, with the offending snippet.
//!
//! The one YAML reader of the workspace: the control API's rule bodies (`control::rules`) and
//! the harness's scenario, expectation and device files go through [`parse`] / [`load`].

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A YAML file that could not be read or does not match its schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum YamlError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML or does not match the schema.
    #[error("{}:{}: {message}", path.display(), position(*line, *column))]
    Invalid {
        /// The file (or `<input>`).
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<u64>,
        /// 1-based column, when known.
        column: Option<u64>,
        /// What is wrong, with the parser's snippet and hint.
        message: String,
    },
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => l.to_string(),
        _ => "?".to_owned(),
    }
}

impl YamlError {
    /// The 1-based (line, column) of the problem, when known.
    pub fn line_column(&self) -> Option<(u64, u64)> {
        match self {
            YamlError::Invalid {
                line: Some(l),
                column: Some(c),
                ..
            } => Some((*l, *c)),
            _ => None,
        }
    }
}

/// Parses `text` (named `path` in errors) strictly into `T`.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, YamlError> {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let location = e.location();
        YamlError::Invalid {
            path: path.to_owned(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: tidy(&e.to_string(), path),
        }
    })
}

/// serde-saphyr renders `error: line L column C: <what>` plus a snippet headed `--> <input>:L:C`;
/// the position is already in our prefix, and the snippet should name the real file.
fn tidy(rendered: &str, path: &Path) -> String {
    let text = rendered.strip_prefix("error: ").unwrap_or(rendered);
    let text = match text.split_once(": ") {
        Some((position, rest)) if position.starts_with("line ") => rest,
        _ => text,
    };
    text.replace("<input>", &path.display().to_string())
}

/// Reads and parses the YAML file at `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn yes_and_no_stay_strings() {
        let map: BTreeMap<String, String> =
            parse("a: yes\nb: no\n", Path::new("f.yaml")).expect("strings");
        assert_eq!(map["a"], "yes");
        assert_eq!(map["b"], "no");
    }

    #[test]
    fn an_error_names_the_file_line_and_column_once() {
        let err = parse::<Doc>("name: x\nnmae: y\n", Path::new("dir/f.yaml")).expect_err("unknown");
        assert_eq!(err.line_column().map(|(l, _)| l), Some(2), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("dir/f.yaml:2:"), "{text}");
        assert!(text.contains("nmae"), "{text}");
        assert!(
            !text.contains("<input>"),
            "the snippet names the file: {text}"
        );
        assert!(
            !text.contains(": line 2 column"),
            "the position is not repeated: {text}"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let err = load::<Doc>(Path::new("/nonexistent/espsim.yaml")).expect_err("missing");
        assert!(matches!(err, YamlError::Read { .. }), "{err:?}");
        assert_eq!(err.line_column(), None);
    }
}
