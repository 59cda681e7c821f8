//! What one client may make the host hold or wait for (issue #12, "Hostile users"): request
//! body size, header size and the time a client gets to send its headers and body.

use std::time::Duration;

use anyhow::{Result, bail};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;

/// Set by `berth up` flags or their environment variables (docs/host.md).
#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Largest request body accepted, in bytes; larger ones get 413 before a guest runs.
    #[arg(long, env = "BERTH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Largest request head (request line and headers), in bytes (at least 8192); larger
    /// ones get 431 and the connection is closed.
    #[arg(long, env = "BERTH_MAX_HEADER_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(8192..))]
    pub max_header_bytes: u32,
    /// Time a client gets to send a request's headers, counted from when the host waits for
    /// them: also how long an idle keep-alive connection stays open (`10s`, `500ms`).
    #[arg(long, env = "BERTH_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client gets to send a request's body once its headers are in; past it, 408.
    #[arg(long, env = "BERTH_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
}

/// How many requests one component may run at once: past it, 503 with `Retry-After`, so
/// a component stuck on a slow dependency cannot take the whole instance pool from the
/// others.
#[derive(Clone, Debug, clap::Args)]
pub struct ConcurrencyLimits {
    /// Requests one component may serve at once (default: half the instance pool,
    /// BERTH_MAX_INSTANCES, 256).
    #[arg(long = "max-concurrent-per-component", env = "BERTH_MAX_CONCURRENT_PER_COMPONENT",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub per_component: Option<u32>,
}

impl ConcurrencyLimits {
    /// Seconds a refused client is told to wait.
    pub const RETRY_AFTER_SECONDS: u32 = 1;

    pub fn per_component(&self) -> usize {
        let pool = crate::runtime::max_instances();
        self.per_component.unwrap_or((pool / 2).max(1)) as usize
    }
}

/// Ceilings on each outbound HTTP request a guest makes: a guest's own (shorter) timeouts
/// still apply, wasmtime's 600 s defaults never do.
#[derive(Clone, Debug, clap::Args)]
pub struct OutboundLimits {
    /// Time to connect (TCP, TLS and HTTP handshake) to an outbound host.
    #[arg(long = "outbound-connect-timeout", env = "BERTH_OUTBOUND_CONNECT_TIMEOUT",
          default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time from sending a request to its response's head; also the longest gap between
    /// body frames.
    #[arg(long = "outbound-first-byte-timeout", env = "BERTH_OUTBOUND_FIRST_BYTE_TIMEOUT",
          default_value = "30s", value_parser = parse_duration)]
    pub first_byte_timeout: Duration,
    /// Time for a whole outbound request, from connecting to the response body's end.
    #[arg(long = "outbound-total-timeout", env = "BERTH_OUTBOUND_TOTAL_TIMEOUT",
          default_value = "60s", value_parser = parse_duration)]
    pub total_timeout: Duration,
}

impl Default for OutboundLimits {
    /// The flags' defaults (checked by a test), for servers built without flags.
    fn default() -> Self {
        OutboundLimits {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(60),
        }
    }
}

impl OutboundLimits {
    /// A guest's request options with each timeout at most the host's.
    pub fn cap(
        &self,
        guest: Option<wasmtime_wasi_http::RequestOptions>,
    ) -> wasmtime_wasi_http::RequestOptions {
        let guest = guest.unwrap_or_default();
        let cap = |asked: Option<Duration>, max: Duration| Some(asked.map_or(max, |a| a.min(max)));
        wasmtime_wasi_http::RequestOptions {
            connect_timeout: cap(guest.connect_timeout, self.connect_timeout),
            first_byte_timeout: cap(guest.first_byte_timeout, self.first_byte_timeout),
            between_bytes_timeout: cap(guest.between_bytes_timeout, self.first_byte_timeout),
        }
    }
}

/// `10s`, `1.5s`, `500ms`, `2m`, or plain seconds (`10`). Zero is refused: it would close
/// every connection at once.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a duration (e.g. 10s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => bail!("{s:?}: unknown unit {unit:?} (ms, s or m)"),
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        bail!("{s:?}: a duration must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Why a request body was refused, and the status that says so.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyRefused {
    TooLarge,
    TimedOut,
    /// The client broke the framing or went away mid-body.
    Broken,
}

impl BodyRefused {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyRefused::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefused::TimedOut => StatusCode::REQUEST_TIMEOUT,
            BodyRefused::Broken => StatusCode::BAD_REQUEST,
        }
    }

    /// The plain-text reason sent with the status, so a client learns what was wrong.
    pub fn reason(&self, limit: u64) -> String {
        match self {
            BodyRefused::TooLarge => format!("request body larger than {limit} bytes\n"),
            BodyRefused::TimedOut => "request body not received in time\n".to_string(),
            BodyRefused::Broken => "request body ended early or was malformed\n".to_string(),
        }
    }
}

/// Reads a whole request body, refusing it as soon as it declares or passes `limit` bytes:
/// at most `limit` bytes (plus one read) are ever held. Trailers are dropped.
pub async fn read_body<B>(body: B, limit: u64, timeout: Duration) -> Result<Bytes, BodyRefused>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    // A declared Content-Length over the limit: refused without reading a byte.
    if body.size_hint().lower() > limit {
        return Err(BodyRefused::TooLarge);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let read = async move {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyRefused::Broken)?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(BodyRefused::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyRefused::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::Full;
    use hyper::body::{Body, Frame};

    /// A chunked-style body (no length hint): these frames, then the end or, with `stall`,
    /// nothing ever again (a client that stopped sending).
    struct Chunks {
        frames: VecDeque<Result<Bytes, String>>,
        stall: bool,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = String;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, String>>> {
            match self.frames.pop_front() {
                Some(f) => Poll::Ready(Some(f.map(Frame::data))),
                None if self.stall => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks {
            frames: parts.iter().map(|p| Ok(Bytes::from_static(p))).collect(),
            stall: false,
        }
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        // Full's size hint is exact, as hyper's is for Content-Length.
        let body = Full::new(Bytes::from(vec![0u8; 11]));
        assert_eq!(read_body(body, 10, T).await, Err(BodyRefused::TooLarge));
        let body = Full::new(Bytes::from(vec![0u8; 10]));
        assert_eq!(read_body(body, 10, T).await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_stream_is_cut_off_when_it_passes_the_limit() {
        let body = chunks(&[b"12345", b"67890", b"x"]);
        assert_eq!(read_body(body, 10, T).await, Err(BodyRefused::TooLarge));
        let body = chunks(&[b"12345", b"67890"]);
        assert_eq!(&read_body(body, 10, T).await.unwrap()[..], b"1234567890");
        let body = chunks(&[]);
        assert_eq!(read_body(body, 10, T).await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_body_that_stalls_times_out() {
        let mut body = chunks(&[b"abc"]);
        body.stall = true;
        let r = read_body(body, 10, Duration::from_millis(50)).await;
        assert_eq!(r, Err(BodyRefused::TimedOut));
        assert_eq!(BodyRefused::TimedOut.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_broken_body_is_a_bad_request() {
        let body = Chunks {
            frames: [Ok(Bytes::from_static(b"ab")), Err("reset".to_string())].into(),
            stall: false,
        };
        assert_eq!(read_body(body, 10, T).await, Err(BodyRefused::Broken));
        assert_eq!(BodyRefused::Broken.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn defaults_and_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Up {
            #[command(flatten)]
            limits: Limits,
        }
        // Defaults only hold when the environment does not set them.
        for var in ["BERTH_MAX_BODY_BYTES", "BERTH_MAX_HEADER_BYTES"] {
            assert!(
                std::env::var_os(var).is_none(),
                "{var} is set in the test environment"
            );
        }
        let l = Up::try_parse_from(["up"]).unwrap().limits;
        assert_eq!(l.max_body_bytes, 1024 * 1024);
        assert_eq!(l.max_header_bytes, 64 * 1024);
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.body_read_timeout, Duration::from_secs(60));
        let l = Up::try_parse_from([
            "up",
            "--max-body-bytes",
            "10",
            "--header-read-timeout",
            "2s",
        ])
        .unwrap()
        .limits;
        assert_eq!(l.max_body_bytes, 10);
        assert_eq!(l.header_read_timeout, Duration::from_secs(2));
        // hyper panics on a head buffer under 8 KiB: refused at parse time instead.
        assert!(Up::try_parse_from(["up", "--max-header-bytes", "100"]).is_err());
        assert!(Up::try_parse_from(["up", "--header-read-timeout", "0s"]).is_err());
    }

    #[test]
    fn outbound_defaults_and_caps() {
        use clap::Parser;
        #[derive(Parser)]
        struct Up {
            #[command(flatten)]
            outbound: OutboundLimits,
        }
        let parsed = Up::try_parse_from(["up"]).unwrap().outbound;
        let d = OutboundLimits::default();
        assert_eq!(
            (
                parsed.connect_timeout,
                parsed.first_byte_timeout,
                parsed.total_timeout
            ),
            (d.connect_timeout, d.first_byte_timeout, d.total_timeout)
        );
        // No options from the guest: the host's ceilings, not wasmtime's 600 s.
        let o = d.cap(None);
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(30)));
        assert_eq!(o.between_bytes_timeout, Some(Duration::from_secs(30)));
        // A guest may ask for less, never for more.
        let o = d.cap(Some(wasmtime_wasi_http::RequestOptions {
            connect_timeout: Some(Duration::from_secs(1)),
            first_byte_timeout: Some(Duration::from_secs(3600)),
            between_bytes_timeout: None,
        }));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "0", "0s", "-1s", "10h", "abc", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
