//! A TCP proxy that can be cut, as a network failure or a stopped database
//! server cuts a service's connections.

use std::{net::SocketAddr, thread::JoinHandle};

use tokio::sync::oneshot;

/// Forwards every connection to `upstream` until [`CuttableProxy::cut`].
/// It runs on a thread of its own, so blocking and async tests use it
/// alike.
#[derive(Debug)]
pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl CuttableProxy {
    pub fn start(upstream: String) -> CuttableProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (cut, cut_received) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(forward(listener, upstream, cut_received));
        });
        CuttableProxy { addr, cut, thread }
    }

    /// Closes the listener and every connection through it, and returns
    /// once they are closed.
    pub fn cut(self) {
        // The proxy may have stopped already; joining tells either way.
        let _ = self.cut.send(());
        self.thread.join().unwrap();
    }
}

async fn forward(
    listener: std::net::TcpListener,
    upstream: String,
    mut cut: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut cut => break,
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { break };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }
    }
    connections.shutdown().await;
}
