//! A raw RESP connection for tests that check replies byte for byte: requests as argument
//! lists (or one space-separated line), replies as their exact wire text.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Cluster;

/// One connection to a node, speaking RESP by hand.
pub struct Raw(pub BufReader<TcpStream>);

impl Raw {
    /// Connects to node `i` of `cl` (replies awaited at most 30 s).
    pub fn to(cl: &Cluster, i: usize) -> Raw {
        Raw::port(cl.port(i))
    }

    /// Connects to a port on 127.0.0.1.
    pub fn port(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw(BufReader::new(s))
    }

    /// Sends one command and returns its reply's wire text.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.value()
    }

    /// [`Raw::cmd`] with the arguments as one line of space-separated words.
    pub fn line(&mut self, line: &str) -> String {
        let args: Vec<&str> = line.split(' ').collect();
        self.cmd(&args)
    }

    /// Writes one command without reading its reply.
    pub fn send(&mut self, args: &[&str]) {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(req.as_bytes()).unwrap();
    }

    /// Reads one whole reply (aggregates included) as wire text.
    pub fn value(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("reply line");
        assert!(line.ends_with("\r\n"), "short reply {line:?}");
        let n: i64 = line[1..line.len() - 2].parse().unwrap_or(0);
        match line.as_bytes()[0] {
            b'$' | b'=' | b'!' if n >= 0 => {
                let mut data = vec![0u8; n as usize + 2];
                self.0.read_exact(&mut data).unwrap();
                line + &String::from_utf8_lossy(&data)
            }
            t @ (b'*' | b'~' | b'%' | b'>') if n >= 0 => {
                let items = if t == b'%' { 2 * n } else { n };
                (0..items).fold(line, |acc, _| acc + &self.value())
            }
            _ => line,
        }
    }
}

/// Reads from `s` until `want` has arrived (10 s deadline); returns all bytes read.
pub fn read_until(s: &mut TcpStream, want: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    while !got.windows(want.len()).any(|w| w == want) {
        assert!(Instant::now() < deadline, "no {want:?} in {got:?}");
        match s.read(&mut buf) {
            Ok(0) => panic!("closed; got {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}
