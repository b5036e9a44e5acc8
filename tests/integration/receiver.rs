//! A real HTTP receiver on 127.0.0.1 for the tests: it keeps every request (line,
//! headers, body) and answers a fixed status, after a delay, echoing the headers, or
//! with a fixed body.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the receiver read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub line: String,
    pub headers: Vec<String>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with(&prefix))
            .map(|h| h[prefix.len()..].trim())
    }
}

/// An HTTP receiver on 127.0.0.1 that keeps every request and answers `status` after
/// `delay`.
pub struct Receiver {
    pub base: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

pub fn receiver(status: u16, delay: Duration) -> Receiver {
    serve(status, delay, Answer::Empty)
}

/// A receiver whose answer's body is the request's header lines (so a header secret
/// comes back in the response).
pub fn echo(status: u16) -> Receiver {
    serve(status, Duration::ZERO, Answer::Headers)
}

/// A receiver that answers every request 200 with `body`.
pub fn replying(body: &str) -> Receiver {
    serve(200, Duration::ZERO, Answer::Body(body.to_string()))
}

enum Answer {
    Empty,
    Headers,
    Body(String),
}

fn serve(status: u16, delay: Duration, answer: Answer) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (line, headers) = read_head(&mut reader);
            let mut request = Request {
                line,
                headers,
                body: String::new(),
            };
            let length: usize = request
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            request.body = String::from_utf8_lossy(&body).into_owned();
            let answer = match &answer {
                Answer::Empty => String::new(),
                Answer::Headers => request.headers.join("\n"),
                Answer::Body(body) => body.clone(),
            };
            kept.lock().unwrap().push(request);
            std::thread::sleep(delay);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    Receiver { base, seen }
}

/// A request's line and header lines (trimmed), read up to the blank line.
pub fn read_head(reader: &mut impl BufRead) -> (String, Vec<String>) {
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        headers.push(h.trim().to_string());
    }
    (line.trim().to_string(), headers)
}

impl Receiver {
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}
