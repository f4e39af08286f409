use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind};

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Header, Method};
use crate::connection::READ_TIMEOUT;
use crate::util::{RefinedTcpStream, Slot};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // regdesk patch: the connection's place among the open ones, which
    // tells the server whether it is idle, reading a head or busy.
    slot: Slot,

    // regdesk patch: how long a head may take from its first byte, when
    // the head being read must be done, whether the reader's buffer is
    // empty (its next read waits for the network), and whether the
    // socket's read timeout was cut short for the deadline.
    header_timeout: Duration,
    deadline: Option<Instant>,
    drained: bool,
    shortened: bool,
}

/// The parts of a request head.
type Head = (Method, String, HTTPVersion, Vec<Header>);

/// Error that can happen when reading a request.
/// regdesk patch: the longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// regdesk patch: the most headers one request may carry.
const MAX_HEADERS: usize = 100;

#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        slot: Slot,
        header_timeout: Duration,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            slot,
            header_timeout,
            deadline: None,
            drained: false,
            shortened: false,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> IoResult<AsciiString> {
        // regdesk patch: the line is found in the reader's buffer (upstream
        // read it one byte per call through two readers).
        let mut buf = Vec::new();
        loop {
            if self.drained {
                self.arm_deadline()?;
            }
            let available = self.next_header_source.fill_buf().map_err(|e| match e.kind() {
                // A read timeout (EAGAIN on Linux) while reading a head.
                ErrorKind::WouldBlock => IoError::new(ErrorKind::TimedOut, "request head too slow"),
                _ => e,
            })?;
            if available.is_empty() {
                return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF"));
            }
            let (taken, found) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            buf.extend_from_slice(&available[..taken]);
            self.drained = taken == available.len();
            self.next_header_source.consume(taken);
            // A line ends at CRLF; a lone LF is part of the line.
            let ends = found && (buf.len() >= 2 && buf[buf.len() - 2] == b'\r');
            // regdesk patch: upstream reads a line of any length, so one
            // endless header grows memory without bound.
            let length = if ends { buf.len() - 1 } else { buf.len() };
            if length >= MAX_LINE {
                return Err(IoError::new(ErrorKind::InvalidInput, "Header line too long"));
            }
            if ends {
                buf.truncate(buf.len() - 2);
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }
        }
    }

    /// (regdesk patch) Waits for the first byte of a request, as an idle
    /// connection the server may close to make room, then starts the
    /// head's deadline.
    fn await_request(&mut self) -> IoResult<()> {
        self.slot.tracked.idle();
        if self.next_header_source.fill_buf()?.is_empty() {
            return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF"));
        }
        if !self.slot.tracked.head() {
            return Err(closed_for_room());
        }
        self.deadline = Some(Instant::now() + self.header_timeout);
        self.drained = false;
        Ok(())
    }

    /// (regdesk patch) Cuts the socket's read timeout to what is left of
    /// the head's deadline, before a read that waits for the network: a
    /// client sending its head a byte at a time is closed when it is due,
    /// not kept for as long as each byte comes within the read timeout.
    fn arm_deadline(&mut self) -> IoResult<()> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(IoError::new(ErrorKind::TimedOut, "request head too slow"));
        }
        self.slot.tracked.stream().set_read_timeout(Some(left))?;
        self.shortened = true;
        Ok(())
    }

    /// (regdesk patch) The head is over: reads wait as long as usual again.
    fn end_head(&mut self) {
        self.deadline = None;
        if self.shortened {
            self.shortened = false;
            self.slot.tracked.stream().set_read_timeout(Some(READ_TIMEOUT)).ok();
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.await_request().map_err(ReadError::ReadIoError)?;
        let head = self.read_head();
        self.end_head();
        let (method, path, version, headers) = head?;
        // Closed to make room while its head was read: the head may be cut.
        if !self.slot.tracked.busy() {
            return Err(ReadError::ReadIoError(closed_for_room()));
        }

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            // regdesk patch: upstream unwrapped the peer's address, which
            // is an error once the peer has gone.
            self.remote_addr.as_ref().ok().copied().flatten(),
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::BadFraming => ReadError::WrongHeader(version),
            }
        })?;

        // return the request
        Ok(request)
    }

    /// Reads a request line and its headers.
    fn read_head(&mut self) -> Result<Head, ReadError> {
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line().map_err(|e| match e.kind() {
                    ErrorKind::InvalidInput => ReadError::WrongRequestLine,
                    _ => ReadError::ReadIoError(e),
                })?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    // regdesk patch: a line too long or not ASCII is a 400
                    // (upstream closed without an answer), and so are more
                    // than MAX_HEADERS headers (upstream took any number).
                    let line = self.read_next_line().map_err(|e| match e.kind() {
                        ErrorKind::InvalidInput => ReadError::WrongHeader(version.clone()),
                        _ => ReadError::ReadIoError(e),
                    })?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::WrongHeader(version));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };
        Ok((method, path, version, headers))
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(400));
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(400));
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(408));
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = Response::new_empty(StatusCode(417));
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let writer = self.sink.next().unwrap();
                let response = Response::from_string(
                    "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                )
                .with_status_code(StatusCode(505));
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                continue;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// (regdesk patch) The error of a connection closed to make room.
fn closed_for_room() -> IoError {
    IoError::new(ErrorKind::ConnectionAborted, "closed to make room")
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientConnection, MAX_LINE};
    use crate::connection::Connection;
    use crate::util::{Limits, RefinedTcpStream, Tracker};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    /// A connection to a client that sends `pieces`, pausing between them so
    /// that each arrives in a read of its own.
    fn connection_receiving(pieces: Vec<Vec<u8>>) -> (ClientConnection, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            for piece in pieces {
                s.write_all(&piece).unwrap();
                thread::sleep(Duration::from_millis(20));
            }
            // Keeps the connection open until the reads are done.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        let (sock, _) = listener.accept().unwrap();
        let sock = std::sync::Arc::new(Connection::from(sock));
        let slot = Tracker::new(Limits::default()).admit(sock.clone()).unwrap();
        let (read, write) = RefinedTcpStream::new(sock);
        let timeout = Limits::default().header_timeout;
        (ClientConnection::new(write, read, slot, timeout), client)
    }

    fn piece(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    /// Lines found in the reader's buffer: CRLF split between two reads,
    /// a lone LF kept inside a line, two requests in one read, and a body
    /// read after the headers from the same buffer.
    #[test]
    fn request_lines_are_found_across_reads_and_between_requests() {
        let (mut conn, client) = connection_receiving(vec![
            piece("POST /a HTTP/1.1\r"),
            piece("\nHost: x\r\nX-Split: one"),
            piece(" two\r\nX-Lone: a\nb\r\nContent-Length: 5\r\n\r\nhello"),
            piece("GET /b HTTP/1.1\r\nHost: y\r\n\r\nGET /c HTTP/1.1\r\nHost: z\r\n\r\n"),
        ]);
        let mut first = conn.next().expect("the first request");
        assert_eq!(first.url(), "/a");
        let value = |rq: &crate::Request, name: &'static str| {
            rq.headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        assert_eq!(value(&first, "X-Split").as_deref(), Some("one two"));
        assert_eq!(value(&first, "X-Lone").as_deref(), Some("a\nb"));
        let mut body = String::new();
        first.as_reader().read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello");
        drop(first);
        let second = conn.next().expect("the second request");
        assert_eq!(second.url(), "/b");
        assert_eq!(value(&second, "Host").as_deref(), Some("y"));
        drop(second);
        let third = conn.next().expect("the third request, from the same read");
        assert_eq!(third.url(), "/c");
        drop(third);
        drop(conn);
        client.join().unwrap();
    }

    /// A header line of `MAX_LINE` bytes or more is refused (the connection
    /// answers 400 and closes); one byte shorter is read.
    #[test]
    fn a_line_is_refused_from_max_line_bytes() {
        let header = |len: usize| format!("X-Long: {}\r\n", "a".repeat(len - "X-Long: ".len()));
        let (mut conn, client) = connection_receiving(vec![piece(&format!(
            "GET /ok HTTP/1.1\r\n{}\r\n",
            header(MAX_LINE - 2)
        ))]);
        assert_eq!(conn.next().expect("a line just under the limit").url(), "/ok");
        drop(conn);
        client.join().unwrap();

        let (mut conn, client) = connection_receiving(vec![piece(&format!(
            "GET /long HTTP/1.1\r\n{}\r\n",
            header(MAX_LINE)
        ))]);
        assert!(conn.next().is_none(), "a line of MAX_LINE bytes is refused");
        drop(conn);
        client.join().unwrap();
    }
}
