//! A TCP proxy that can be cut, as a network failure or a stopped database
//! server cuts a service's connections.

use std::net::SocketAddr;

/// Forwards every connection to `upstream` until [`CuttableProxy::cut`].
#[derive(Debug)]
pub struct CuttableProxy {
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    tasks: tokio::task::JoinSet<()>,
}

impl CuttableProxy {
    pub fn start(upstream: String) -> CuttableProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn_on(
            async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    connections.spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            },
            runtime.handle(),
        );
        CuttableProxy {
            addr,
            runtime,
            tasks,
        }
    }

    /// Closes the listener and every connection through it.
    pub fn cut(mut self) {
        self.runtime.block_on(self.tasks.shutdown());
    }
}
