//! The pieces of an HTTP/1.1 response head the raw clients need, read leniently.

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the head at the start of `bytes`, its blank line included;
/// `None` while the head is incomplete.
pub fn head_len(bytes: &[u8]) -> Option<usize> {
    find(bytes, b"\r\n\r\n").map(|i| i + 4)
}

/// The status code of a response that has begun (`HTTP/1.1 NNN`); 0 when the
/// bytes do not begin with an HTTP/1.1 status line.
pub fn status_of(response: impl AsRef<[u8]>) -> u16 {
    let bytes = response.as_ref();
    bytes
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The value of the `Content-Length` line of `head` (any case), if there is one
/// and it is a number.
pub fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_pieces() {
        let response = b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope";
        assert_eq!(head_len(response), Some(response.len() - 4));
        assert_eq!(head_len(&response[..20]), None);
        assert_eq!(status_of(response), 404);
        assert_eq!(status_of("HTTP/1.1 20"), 0);
        assert_eq!(status_of("garbage"), 0);
        let head = std::str::from_utf8(&response[..head_len(response).unwrap()]).unwrap();
        assert_eq!(content_length(head), Some(4));
        assert_eq!(
            content_length("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            None
        );
        assert_eq!(find(b"abcabc", b"ca"), Some(2));
    }
}
