//! The demo application the default drill starts on the restored database, standing in
//! for the real service: it answers
//!
//! - `GET /healthz` → 200 `{"ok":true}` (the process is up), and
//! - `GET /readyz`  → 200 `{"ok":true,"db":"up",...}` when it can open the database
//!   read-only and query it, else 503 `{"ok":false,"db":"down","error":...}`.
//!
//! Usage: `restore-drill-demo-service --db PATH --port N [--query SQL]` (or the
//! environment variables `DEMO_DB`, `DEMO_PORT`, `DEMO_QUERY`). It binds 127.0.0.1 only,
//! serves one request at a time (a probe target, not a server), and stops on SIGTERM.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

const DEFAULT_QUERY: &str = "SELECT count(*) FROM sqlite_master";

struct Config {
    db: String,
    port: u16,
    query: String,
}

fn main() {
    let config = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "restore-drill-demo-service: {e}\nusage: restore-drill-demo-service --db PATH --port N [--query SQL]"
            );
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", config.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "restore-drill-demo-service: cannot listen on 127.0.0.1:{}: {e}",
                config.port
            );
            std::process::exit(1);
        }
    };
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(config.port);
    println!(
        "listening on http://127.0.0.1:{port} (database {})",
        config.db
    );
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        if let Err(e) = serve(stream, &config) {
            eprintln!("request failed: {e}");
        }
    }
}

fn parse_args() -> Result<Config, String> {
    let mut db = std::env::var("DEMO_DB").ok();
    let mut port = std::env::var("DEMO_PORT").ok();
    let mut query = std::env::var("DEMO_QUERY").ok();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--db" => &mut db,
            "--port" => &mut port,
            "--query" => &mut query,
            other => return Err(format!("unknown argument `{other}`")),
        };
        *slot = Some(args.next().ok_or_else(|| format!("{flag} needs a value"))?);
    }
    let port = port.ok_or("--port (or DEMO_PORT) is required")?;
    Ok(Config {
        db: db.ok_or("--db (or DEMO_DB) is required")?,
        port: port.parse().map_err(|_| format!("bad port `{port}`"))?,
        query: query.unwrap_or_else(|| DEFAULT_QUERY.into()),
    })
}

/// Reads the request head, answers, closes the connection.
fn serve(stream: TcpStream, config: &Config) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are not needed; read them so the client is not cut off mid-request.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = route(method, path, config);
    println!("{method} {path} → {status}");
    respond(&stream, status, &body)
}

fn route(method: &str, path: &str, config: &Config) -> (u16, String) {
    match (method, path) {
        ("GET", "/healthz") => (200, r#"{"ok":true}"#.into()),
        ("GET", "/readyz") => match query_db(config) {
            Ok(value) => (
                200,
                json!({"ok": true, "db": "up", "value": value}).to_string(),
            ),
            Err(e) => (
                503,
                json!({"ok": false, "db": "down", "error": e}).to_string(),
            ),
        },
        (_, "/healthz" | "/readyz") => (405, r#"{"ok":false,"error":"method not allowed"}"#.into()),
        _ => (404, r#"{"ok":false,"error":"not found"}"#.into()),
    }
}

/// Opens the database read-only (the drill's copy must not change under its checks) and
/// runs the query, returning its first value.
fn query_db(config: &Config) -> Result<i64, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&config.db, flags).map_err(|e| e.to_string())?;
    conn.query_row(&config.query, [], |row| row.get::<_, i64>(0))
        .map_err(|e| e.to_string())
}

fn respond(mut stream: &TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
