//! What a stored line's text may be: at most 64 KiB, valid UTF-8.

/// Longest stored message, in bytes, before the marker.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Returns `bytes` as text: bytes that are not UTF-8 escaped as `\xNN`, the text cut at
/// [`MAX_MESSAGE`] bytes (escapes included), with a marker saying how many bytes of the line
/// were cut (`cut_before`: what the sender already cut).
pub fn message(bytes: &[u8], cut_before: u64) -> String {
    let mut text = String::with_capacity(bytes.len().min(MAX_MESSAGE) + 32);
    // Bytes of `bytes` the text holds.
    let mut used = 0;
    'chunks: for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if text.len() + valid.len() <= MAX_MESSAGE {
            text.push_str(valid);
            used += valid.len();
        } else {
            for character in valid.chars() {
                if text.len() + character.len_utf8() > MAX_MESSAGE {
                    break 'chunks;
                }
                text.push(character);
                used += character.len_utf8();
            }
        }
        for byte in chunk.invalid() {
            if text.len() + 4 > MAX_MESSAGE {
                break 'chunks;
            }
            text.push_str(&format!("\\x{byte:02x}"));
            used += 1;
        }
    }
    let cut = (bytes.len() - used) as u64 + cut_before;
    if cut > 0 {
        text.push_str(&format!(" [cut: {cut} more bytes]"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(message("héllo".as_bytes(), 0), "héllo");
        assert_eq!(message(b"a\xff\xfeb", 0), "a\\xff\\xfeb");
        // A character cut in half by the limit is escaped, not lost silently.
        assert_eq!(message(b"\xc3", 0), "\\xc3");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let long = vec![b'x'; MAX_MESSAGE + 10];
        let text = message(&long, 0);
        assert!(text.starts_with(&"x".repeat(MAX_MESSAGE)));
        assert!(text.ends_with(" [cut: 10 more bytes]"), "{}", &text[MAX_MESSAGE..]);
        assert_eq!(message(&long[..MAX_MESSAGE], 0).len(), MAX_MESSAGE);
        // Escapes count against the limit.
        let invalid = vec![0xff_u8; MAX_MESSAGE];
        let text = message(&invalid, 0);
        let kept = MAX_MESSAGE / 4;
        assert!(text.starts_with("\\xff"));
        assert!(
            text.ends_with(&format!(" [cut: {} more bytes]", MAX_MESSAGE - kept)),
            "{}",
            &text[MAX_MESSAGE - 8..]
        );
        // What the sender cut counts too.
        assert!(message(&long[..MAX_MESSAGE], 7).ends_with(" [cut: 7 more bytes]"));
    }
}
