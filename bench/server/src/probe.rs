//! `verdict-bench-server probe HOST:PORT PATH SECONDS [AUTHORIZATION]`: the
//! time to answer a shed request, measured while wrk overloads the server.
//!
//! One keep-alive connection with TCP_NODELAY (so neither connection set-up
//! nor Nagle is counted) sends GETs back to back for SECONDS and times every
//! answer that is a 503 with `Retry-After`. Prints one JSON line:
//! `{"shed": n, "admitted": n, "median_ms": x, "p99_ms": y}`.
//!
//! A blocking client on purpose: it is the cheapest way to send one request
//! at a time, and it keeps the client's own cost out of the figure as far as
//! a client on the same two cores can.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One parsed answer: its status and whether it carried `Retry-After`.
struct Answer {
    status: u16,
    retry_after: bool,
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body).
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Answer> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let retry_after = head.lines().any(|l| l.starts_with("retry-after:"));
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Answer {
        status,
        retry_after,
    })
}

/// Runs the probe and prints its JSON line.
pub fn run(addr: &str, path: &str, seconds: f64, auth: Option<&str>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n");
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut shed, mut admitted) = (Vec::new(), 0u64);
    let mut buf = Vec::with_capacity(8192);
    while Instant::now() < end {
        let start = Instant::now();
        stream.write_all(request.as_bytes())?;
        let answer = read_answer(&mut stream, &mut buf)?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if answer.status == 503 && answer.retry_after {
            shed.push(ms);
        } else {
            admitted += 1;
        }
    }
    shed.sort_by(f64::total_cmp);
    if shed.is_empty() {
        println!(r#"{{"shed": 0, "admitted": {admitted}}}"#);
    } else {
        let median = shed[shed.len() / 2];
        let p99 = shed[(shed.len() * 99 / 100).min(shed.len() - 1)];
        println!(
            r#"{{"shed": {}, "admitted": {admitted}, "median_ms": {median}, "p99_ms": {p99}}}"#,
            shed.len()
        );
    }
    Ok(())
}
