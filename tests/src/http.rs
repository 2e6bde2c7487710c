//! [`http`]: one HTTP/1.1 request as a browser or a scraper sends it, for
//! the dashboard's and the metrics' tests and the WebDriver client.

use std::time::Duration;

/// An HTTP/1.1 reply: its status, headers (names lowercase) and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 request to `url` (`http://HOST:PORT`), as a browser or a
/// scraper sends it: `headers` beside Host, `body` as it is.
pub async fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://").to_string();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let exchange = move || -> std::io::Result<String> {
        let mut socket = std::net::TcpStream::connect(address)?;
        socket.set_read_timeout(Some(Duration::from_secs(120)))?;
        socket.write_all(request.as_bytes())?;
        // Read until the reply is whole: some servers (chromedriver) keep
        // the connection open whatever `Connection: close` asked.
        let mut response = Vec::new();
        let mut buffer = [0u8; 64 << 10];
        loop {
            let read = socket.read(&mut buffer)?;
            response.extend_from_slice(&buffer[..read]);
            if read == 0 || whole(&response) {
                return Ok(String::from_utf8_lossy(&response).into_owned());
            }
        }
    };
    let response = tokio::task::spawn_blocking(exchange)
        .await
        .expect("the request ran")
        .expect("the server answers");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP reply");
    let mut lines = head.lines();
    let status = (lines.next().and_then(|l| l.split(' ').nth(1)))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body: body.to_string(),
    };
    match reply.header("transfer-encoding") {
        Some("chunked") => Reply {
            body: unchunked(&reply.body),
            ..reply
        },
        _ => reply,
    }
}

/// Whether `response` holds a whole reply, by its `Content-Length` or its
/// last chunk.
fn whole(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let body = &response[end + 4..];
    let length = (head.lines())
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    match length {
        Some(length) => body.len() >= length,
        None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
        None => false,
    }
}

/// A chunked body's chunks, joined.
fn unchunked(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(after)) = (rest.get(..size), rest.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        body = after.trim_start_matches("\r\n");
    }
    out
}
