//! NDJSON import input: its lines, numbered as a text editor numbers them, so
//! a report's line numbers point at the line a user sees.

/// How many lines the input has, as an editor counts them (a final newline
/// ends the last line; it does not start another).
pub fn line_count(input: &[u8]) -> i64 {
    let pieces = input.split(|b| *b == b'\n').count() as i64;
    if input.ends_with(b"\n") {
        pieces - 1
    } else {
        pieces
    }
}

/// The input's lines, numbered from 1 as a text editor numbers them (blank
/// ones counted), without the blank ones.
pub fn numbered_lines(input: &[u8]) -> impl Iterator<Item = (i64, &[u8])> {
    input
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as i64 + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}
