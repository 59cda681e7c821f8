//! A round-robin TCP load balancer on loopback, standing in for the Kubernetes Service in
//! front of several replicas: each new connection goes to the next backend.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct RoundRobin {
    pub addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    /// Connections forwarded to each backend, by index.
    counts: Arc<Mutex<Vec<usize>>>,
}

impl RoundRobin {
    /// Starts listening; connections wait for [`RoundRobin::set_backends`].
    pub fn start() -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let counts: Arc<Mutex<Vec<usize>>> = Arc::default();
        let next = AtomicUsize::new(0);
        let (b, c) = (backends.clone(), counts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let target = {
                    let list = b.lock().unwrap();
                    if list.is_empty() {
                        continue;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed) % list.len();
                    c.lock().unwrap()[i] += 1;
                    list[i]
                };
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(target) {
                        pipe(client, server);
                    }
                });
            }
        });
        RoundRobin {
            addr,
            backends,
            counts,
        }
    }

    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.counts.lock().unwrap() = vec![0; backends.len()];
        *self.backends.lock().unwrap() = backends;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn counts(&self) -> Vec<usize> {
        self.counts.lock().unwrap().clone()
    }
}

/// Copies both ways until each side has finished sending.
fn pipe(client: TcpStream, server: TcpStream) {
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || copy(client, s2));
    copy(server, c2);
    let _ = up.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
