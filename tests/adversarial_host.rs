//! Hostile clients against the real running host (issue #12): oversized bodies refused before
//! a guest runs and without buffering them, slow or idle connections closed, oversized headers
//! refused. Raw TCP clients, since well-behaved HTTP clients cannot misbehave on purpose.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_tests::{AppOptions, TestApp, skip_on_spin};

const MIB: u64 = 1024 * 1024;

fn app_with_env(env: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(AppOptions {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

fn connect(app: &TestApp) -> TcpStream {
    let s = TcpStream::connect(app.addr()).expect("connect to the host");
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until the response head is complete (or EOF / error / timeout): the status code, if
/// one arrived.
fn read_status(s: &mut TcpStream, timeout: Duration) -> Option<u16> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// The host's resident memory, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

/// Waits until the peer closes the connection (EOF or reset): how long that took, or None
/// if it was still open after `limit`. Bytes the server sends (e.g. a 408) are skipped.
fn time_until_closed(s: &TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut r = s.try_clone().unwrap();
    let mut chunk = [0u8; 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        r.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match r.read(&mut chunk) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if started.elapsed() >= limit {
                    return None;
                }
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

#[test]
fn content_length_over_the_limit_is_refused_without_reading_the_body() {
    if skip_on_spin("berth's body limit (--max-body-bytes); Spin streams any body to the guest") {
        return;
    }
    let app = TestApp::spawn();
    let mut s = connect(&app);
    // Headers only: a host that waits for the 2 MB before answering never answers.
    write!(
        s,
        "POST /api/v1/images HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 2000000\r\n\r\n",
        app.addr()
    )
    .unwrap();
    let started = Instant::now();
    let status = read_status(&mut s, Duration::from_secs(5));
    let took = started.elapsed();
    println!("adversarial_host: Content-Length 2000000 answered {status:?} in {took:.0?}");
    assert_eq!(status, Some(413), "{}", app.output());
    assert!(took < Duration::from_secs(2), "413 took {took:?}");
}

#[test]
fn body_limit_is_configurable_and_bodies_under_it_reach_the_guest() {
    if skip_on_spin("berth's body limit (BERTH_MAX_BODY_BYTES); Spin has none") {
        return;
    }
    let app = app_with_env(&[("BERTH_MAX_BODY_BYTES", "1000")]);
    let over = app.raw(
        "POST",
        "/api/v1/images",
        None,
        &[("content-type", "application/json")],
        &[b' '; 2000],
    );
    assert_eq!(over.status, 413, "{}", over.text);
    assert!(
        over.text.contains("larger than 1000 bytes"),
        "{}",
        over.text
    );
    // Under the limit the guest runs: an anonymous create is the component's 401.
    let under = app.raw(
        "POST",
        "/api/v1/images",
        None,
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(under.status, 401, "{}", under.text);
    // A chunked body over the limit is cut off too (not only a declared length).
    let mut s = start_chunked_post(&app);
    for _ in 0..4 {
        let _ = write!(s, "200\r\n{}\r\n", " ".repeat(0x200));
    }
    let _ = s.write_all(b"0\r\n\r\n");
    assert_eq!(read_status(&mut s, Duration::from_secs(5)), Some(413));
}

#[test]
fn a_gigabyte_chunked_upload_is_cut_off_with_bounded_memory() {
    if skip_on_spin("berth's body limit; Spin streams any body to the guest") {
        return;
    }
    const TOTAL: u64 = 1024 * MIB;
    const BOUND: u64 = 64 * MIB;
    let app = TestApp::spawn();
    let pid = app.pid();
    // Warm up (one instance, one connection) so the baseline includes what any request costs.
    let warm = app.raw(
        "POST",
        "/api/v1/images",
        None,
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(warm.status, 401);
    let baseline = rss_bytes(pid);

    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let mut s = start_chunked_post(&app);
    // Generated as it goes: one 64 KiB chunk reused.
    let chunk = vec![b' '; 64 * 1024];
    let frame_head = format!("{:x}\r\n", chunk.len());
    let mut sent = 0u64;
    let mut over_bound = false;
    while sent < TOTAL {
        // Stop early rather than let an unbounded host eat the machine's memory.
        if peak.load(Ordering::Relaxed) - baseline > BOUND {
            over_bound = true;
            break;
        }
        let wrote = s
            .write_all(frame_head.as_bytes())
            .and_then(|()| s.write_all(&chunk))
            .and_then(|()| s.write_all(b"\r\n"));
        if wrote.is_err() {
            break; // the host closed the connection: what it should do
        }
        sent += chunk.len() as u64;
    }
    if sent >= TOTAL {
        let _ = s.write_all(b"0\r\n\r\n");
    }
    // A 413 may or may not be readable once the host has reset the connection.
    let status = read_status(&mut s, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    let stopped = if over_bound {
        "the test gave up: memory over the bound"
    } else if sent < TOTAL {
        "the host closed the connection"
    } else {
        "the whole body was sent"
    };
    println!(
        "adversarial_host: peak RSS growth {} MiB during a 1 GB upload (baseline {} MiB; \
         {} MiB sent, then {stopped}; status {status:?})",
        growth / MIB,
        baseline / MIB,
        sent / MIB
    );
    assert!(!over_bound && growth <= BOUND, "host grew {growth} bytes");
    assert!(sent < TOTAL, "the host read the whole 1 GB body");
    assert!(matches!(status, None | Some(413)), "status {status:?}");
    // The host is still serving.
    assert_eq!(app.get("/.well-known/spin/health", None).status, 200);
}

#[test]
fn headers_sent_a_byte_at_a_time_are_cut_off() {
    if skip_on_spin("berth's header read timeout; Spin has none") {
        return;
    }
    let app = app_with_env(&[("BERTH_HEADER_READ_TIMEOUT", "2s")]);
    let mut s = connect(&app);
    let closed = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (s, closed) = (s.try_clone().unwrap(), closed.clone());
        std::thread::spawn(move || {
            let r = time_until_closed(&s, Duration::from_secs(15));
            closed.store(true, Ordering::Relaxed);
            r
        })
    };
    // A header that never ends, one byte every 200 ms.
    let head = b"GET /.well-known/spin/health HTTP/1.1\r\nX-Slow: ";
    let mut bytes = head.iter().copied().chain(std::iter::repeat(b'a'));
    while !closed.load(Ordering::Relaxed) {
        if s.write_all(&[bytes.next().unwrap()]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = watcher.join().unwrap();
    println!("adversarial_host: slow headers closed after {took:?} (header timeout 2 s)");
    let took = took.expect("connection still open after 15 s");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn idle_connections_are_closed() {
    if skip_on_spin("berth's header read timeout on idle connections; Spin has none") {
        return;
    }
    let app = app_with_env(&[("BERTH_HEADER_READ_TIMEOUT", "2s")]);
    // A connection that never sends anything.
    let silent = connect(&app);
    // A keep-alive connection that goes quiet after one request.
    let mut kept = connect(&app);
    write!(
        kept,
        "GET /.well-known/spin/health HTTP/1.1\r\nHost: {}\r\n\r\n",
        app.addr()
    )
    .unwrap();
    assert_eq!(read_status(&mut kept, Duration::from_secs(5)), Some(200));
    let kept_took = time_until_closed(&kept, Duration::from_secs(15));
    let silent_took = time_until_closed(&silent, Duration::from_secs(1));
    println!(
        "adversarial_host: idle keep-alive closed after {kept_took:?}, silent connection \
         closed (within 1 s of that) {silent_took:?}"
    );
    let kept_took = kept_took.expect("idle keep-alive connection still open after 15 s");
    assert!(kept_took < Duration::from_secs(5), "{kept_took:?}");
    assert!(silent_took.is_some(), "silent connection still open");
}

#[test]
fn oversized_headers_are_refused() {
    if skip_on_spin("berth's header size limit (--max-header-bytes); Spin's is hyper's default") {
        return;
    }
    let app = TestApp::spawn();
    let mut s = connect(&app);
    // 100 KiB of headers, in four 25 KiB values (under the header count limit).
    let mut req = format!(
        "GET /.well-known/spin/health HTTP/1.1\r\nHost: {}\r\n",
        app.addr()
    );
    for i in 0..4 {
        req.push_str(&format!("X-Pad-{i}: {}\r\n", "a".repeat(25 * 1024)));
    }
    req.push_str("\r\n");
    // The host may stop reading (and reset) before all of it is written.
    let _ = s.write_all(req.as_bytes());
    let status = read_status(&mut s, Duration::from_secs(5));
    println!("adversarial_host: 100 KiB of headers answered {status:?}");
    assert!(matches!(status, None | Some(431)), "status {status:?}");
    // Refused, not just slow: the connection is gone.
    assert!(time_until_closed(&s, Duration::from_secs(5)).is_some());
    // Headers of ordinary size still work.
    assert_eq!(app.get("/.well-known/spin/health", None).status, 200);
}

/// A connection that has sent the head of an anonymous chunked `POST /api/v1/images`.
fn start_chunked_post(app: &TestApp) -> TcpStream {
    let mut s = connect(app);
    write!(
        s,
        "POST /api/v1/images HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        app.addr()
    )
    .unwrap();
    s
}
