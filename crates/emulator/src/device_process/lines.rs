//! Bounded line reading from a process's pipe: a line never grows past its limit in memory, and
//! one that would is reported as [`Line::TooLong`] with its first bytes (the rest is skipped).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// How many bytes of an over-long line are kept for the report.
const KEEP: usize = 64;

/// One line read from the pipe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line, without its `\n` (nor a `\r` before it).
    Text(Vec<u8>),
    /// A line over the limit: its first bytes.
    TooLong(Vec<u8>),
}

/// Reads one line of at most `max` bytes; `None` at end of input (a last line without `\n`
/// still counts).
pub(crate) async fn next_line<R>(reader: &mut R, max: usize) -> std::io::Result<Option<Line>>
where
    R: AsyncBufRead + Unpin,
{
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if line.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (chunk, used, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                let room = KEEP.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..room.min(chunk.len())]);
                line.truncate(KEEP);
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if end {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong(line)));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(Line::Text(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let input = format!("one\r\n{}\nthree", "x".repeat(100));
        let mut reader = tokio::io::BufReader::with_capacity(8, input.as_bytes());
        let mut got = Vec::new();
        while let Some(line) = next_line(&mut reader, 50).await.expect("reads") {
            got.push(line);
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Line::Text(b"one".to_vec()));
        assert!(
            matches!(&got[1], Line::TooLong(v) if !v.is_empty() && v.len() <= KEEP && v.iter().all(|b| *b == b'x')),
            "{got:?}"
        );
        assert_eq!(got[2], Line::Text(b"three".to_vec()));
    }
}
