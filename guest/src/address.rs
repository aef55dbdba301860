//! The caller's public address, as the one CIDR a cloud firewall admits SSH from (EC2
//! security group, GCE firewall rule, Azure NSG). Asked of a "what is my IP" service
//! over plain HTTP; the endpoint is injected so tests use a loopback server and never
//! the real service.

use std::net::IpAddr;
use std::time::Duration;

use herd_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where to ask, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIp {
    /// `host:port` to connect to.
    pub addr: String,
    /// The `Host` header.
    pub host: String,
    pub timeout: Duration,
}

impl Default for CheckIp {
    /// checkip.amazonaws.com on port 80, 5 s: it answers the address alone, one line.
    fn default() -> Self {
        CheckIp {
            addr: "checkip.amazonaws.com:80".into(),
            host: "checkip.amazonaws.com".into(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The largest answer read: an address and some headers.
const MAX_ANSWER: u64 = 16 * 1024;

/// This machine's public address as a host CIDR (`/32`, or `/128` for IPv6). The error
/// is `Unavailable` and names the endpoint; the caller adds how to configure the CIDR.
pub async fn caller_cidr(at: &CheckIp) -> Result<String> {
    let fail = |m: String| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot find this machine's public address from {}: {m}", at.host),
        )
        .with_context("endpoint", at.addr.clone())
    };
    let io = async {
        let mut s = tokio::net::TcpStream::connect(&at.addr).await?;
        s.write_all(format!("GET / HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", at.host).as_bytes())
            .await?;
        let mut body = Vec::new();
        s.take(MAX_ANSWER).read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(at.timeout, io)
        .await
        .map_err(|_| fail(format!("no answer within {} s", at.timeout.as_secs_f64())))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&body);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("the answer is not HTTP".into()))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("it answered `{status}`")));
    }
    let ip = rest.trim();
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(format!("{a}/32")),
        Ok(IpAddr::V6(a)) => Ok(format!("{a}/128")),
        Err(_) => Err(fail(format!(
            "unexpected answer `{}`",
            ip.chars().take(80).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A loopback server answering one request with `answer` (or never, when `None`).
    async fn server(answer: Option<&'static str>) -> CheckIp {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            match answer {
                Some(a) => {
                    let _ = s.write_all(a.as_bytes()).await;
                }
                None => tokio::time::sleep(Duration::from_secs(60)).await,
            }
        });
        CheckIp {
            addr,
            host: "checkip.test".into(),
            timeout: Duration::from_millis(300),
        }
    }

    #[tokio::test]
    async fn the_answer_becomes_a_host_cidr() {
        let at = server(Some("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n203.0.113.7\n")).await;
        assert_eq!(caller_cidr(&at).await.unwrap(), "203.0.113.7/32");
        let at = server(Some("HTTP/1.1 200 OK\r\n\r\n2001:db8::7\n")).await;
        assert_eq!(caller_cidr(&at).await.unwrap(), "2001:db8::7/128");
    }

    #[tokio::test]
    async fn a_bad_answer_or_silence_is_an_error_naming_the_endpoint() {
        for a in [
            "HTTP/1.1 503 Service Unavailable\r\n\r\n203.0.113.7\n",
            "HTTP/1.1 200 OK\r\n\r\n<html>captive portal</html>",
            "garbage",
        ] {
            let at = server(Some(a)).await;
            let e = caller_cidr(&at).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{a}");
            assert!(e.to_string().contains("checkip.test"), "{e}");
            assert_eq!(e.context_value("endpoint"), Some(at.addr.as_str()));
        }
        let at = server(None).await;
        let e = caller_cidr(&at).await.unwrap_err();
        assert!(e.to_string().contains("no answer"), "{e}");
    }
}
