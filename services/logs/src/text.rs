//! What a stored line's text may be: at most 64 KiB, valid UTF-8.

/// Longest stored message, in bytes, before the marker.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Returns `bytes` as text: bytes that are not UTF-8 escaped as `\xNN`, and cut at
/// [`MAX_MESSAGE`] bytes with a marker saying how much was cut (`cut_before`: what the sender
/// already cut).
pub fn message(bytes: &[u8], cut_before: u64) -> String {
    let over = bytes.len().saturating_sub(MAX_MESSAGE);
    let cut = over as u64 + cut_before;
    let kept = &bytes[..bytes.len() - over];
    let mut text = String::with_capacity(kept.len() + 40);
    for chunk in kept.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
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
        // What the sender cut counts too.
        assert!(message(&long[..MAX_MESSAGE], 7).ends_with(" [cut: 7 more bytes]"));
    }
}
