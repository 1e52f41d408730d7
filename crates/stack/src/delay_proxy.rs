//! A TCP proxy that adds a fixed delay each way: the store one network hop away.
//!
//! On one machine redis answers over loopback in a few microseconds; in production it is another
//! machine, a round trip of a fraction of a millisecond away (more across zones). A session
//! replica waits for that round trip on every request, a token replica never does. To show that
//! here, the launcher can put this proxy between the services and redis
//! ([`crate::StackConfig::store_delay`]): every byte going either way is handed on `delay` after
//! it arrived, so one request and its answer take an added round trip of 2 × `delay`.
//!
//! How it works, per accepted connection:
//!
//! ```text
//!   service ──read──> queue ──(wait until read time + delay)──write──> redis
//!   service <─write── (wait until read time + delay) <── queue <──read── redis
//! ```
//!
//! - Each direction has a **reader** and a **writer** joined by a bounded queue. The reader
//!   stamps every chunk it reads with its due time (now + delay) and queues it at once; the
//!   writer waits until the head chunk is due and writes it. A chunk read at `t` goes out at
//!   `t + delay` even while earlier chunks are still waiting: the delay is added to each chunk,
//!   not summed along the stream, as on a wire. The queue keeps the order.
//! - **Backpressure**: the queue holds at most [`QUEUE_CHUNKS`] chunks of up to [`CHUNK_BYTES`].
//!   When it is full the reader stops reading, the kernel buffers fill, and the sender slows
//!   down, as TCP would; memory stays bounded however fast one side sends.
//! - **Closing**: when one side closes its sending half, the bytes still queued are delivered
//!   and the close is passed on (`shutdown` of the other side's write half), so the far side
//!   sees the end of the stream, and closes its own in turn. An error on either side (a reset)
//!   ends both directions and closes both sockets. When redis is not there, the service's
//!   connection is closed at once.
//! - **Timing**: tokio's timer counts whole milliseconds, far too coarse for a delay of 0.25 ms,
//!   so the writers wait on a Linux `timerfd` (the `tokio-timerfd` crate), which wakes to the
//!   microsecond on an idle machine. A busy machine wakes later: the delay is a lower bound.
//! - The proxy runs on a thread of its own with its own single-threaded runtime, so it works the
//!   same whatever runtime (or none) its owner uses, and dropping the [`DelayProxy`] stops the
//!   thread, which closes every connection it carried.
//!
//! Why not a crate: toxiproxy (and noxious, its Rust port) is a separate server configured over
//! HTTP, one more process to install and run; the in-process crates found (`meter_proxy`, HTTP
//! middlewares such as `noxy`'s latency injector) either target the old tokio-core or delay HTTP
//! requests rather than TCP bytes. What is needed here is a few dozen lines on top of tokio.

use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_timerfd::Delay;

/// The most one read takes from a socket, and so the largest chunk in a queue.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// Chunks waiting in one direction of one connection, at most: with [`CHUNK_BYTES`], at most
/// 1 MiB per direction in memory.
pub const QUEUE_CHUNKS: usize = 64;

/// A running delay proxy. Dropping it stops it and closes every connection through it.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    /// The one-way delay in nanoseconds, read by every reader for every chunk.
    one_way: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `target`, adding
    /// `one_way` in each direction.
    pub fn start(target: SocketAddr, one_way: Duration) -> anyhow::Result<DelayProxy> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("the delay proxy cannot listen on 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let one_way = Arc::new(AtomicU64::new(nanos(one_way)));
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the delay proxy's runtime")?;
        let delay = Arc::clone(&one_way);
        let thread = std::thread::Builder::new()
            .name(format!("delay-proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => return eprintln!("delay proxy on {addr}: {e}"),
                    };
                    tokio::select! {
                        () = accept_loop(listener, target, delay) => {}
                        _ = stopped => {}
                    }
                });
                // The runtime is dropped here: every connection task with it, and their sockets.
            })
            .context("cannot start the delay proxy's thread")?;
        Ok(DelayProxy {
            addr,
            one_way,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delay added in each direction.
    pub fn one_way(&self) -> Duration {
        Duration::from_nanos(self.one_way.load(Ordering::Relaxed))
    }

    /// Changes the delay for every chunk read from now on (open connections included): a load
    /// test can measure several delays on one running stack.
    pub fn set_one_way(&self, one_way: Duration) {
        self.one_way.store(nanos(one_way), Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, one_way: Arc<AtomicU64>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(carry(client, target, Arc::clone(&one_way)));
            }
            // Out of file descriptors, most likely: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One connection: both directions until both have closed, or until either fails.
async fn carry(client: TcpStream, target: SocketAddr, one_way: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return; // the target is down: closing the client's connection says so
    };
    // A proxy that waits for more bytes before sending (Nagle) would add its own delay.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let _ = tokio::try_join!(
        direction(client_read, server_write, &one_way),
        direction(server_read, client_write, &one_way),
    );
}

/// Bytes from `from` to `to`, each chunk written its delay after it was read; at the end of
/// `from`'s stream, `to`'s write half is shut down.
async fn direction(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    one_way: &AtomicU64,
) -> std::io::Result<()> {
    let (queue, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            let n = from.read(&mut buffer).await?;
            if n == 0 {
                return Ok(()); // end of stream: dropping `queue` tells the writer
            }
            let at = Instant::now() + Duration::from_nanos(one_way.load(Ordering::Relaxed));
            if queue.send((at, buffer[..n].to_vec())).await.is_err() {
                return Ok(()); // the writer failed and says why
            }
        }
    };
    let writer = async move {
        let mut timer: Option<Delay> = None;
        while let Some((at, chunk)) = due.recv().await {
            wait_until(&mut timer, at).await?;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(reader, writer).map(drop)
}

/// Waits until `at` on one reusable timerfd (made on first use).
async fn wait_until(timer: &mut Option<Delay>, at: Instant) -> std::io::Result<()> {
    if at <= Instant::now() {
        return Ok(());
    }
    let timer = match timer {
        Some(timer) => {
            timer.reset(at);
            timer
        }
        None => timer.insert(Delay::new(at)?),
    };
    timer.await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on a free port that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// A server that accepts one connection and hands it to the test.
    async fn one_connection_server() -> (SocketAddr, oneshot::Receiver<TcpStream>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (give, take) = oneshot::channel();
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                let _ = give.send(stream);
            }
        });
        (addr, take)
    }

    /// Generous: only a hang fails on it, never slowness of the shared machine.
    const PATIENCE: Duration = Duration::from_secs(30);

    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, future)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
    }

    #[tokio::test]
    async fn each_direction_is_delayed_at_least_the_one_way_delay() {
        let one_way = Duration::from_millis(20);
        let (server_addr, accepted) = one_connection_server().await;
        let proxy = DelayProxy::start(server_addr, one_way).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut server = within("accept", accepted).await.unwrap();

        let sent = Instant::now();
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        within("ping", server.read_exact(&mut got)).await.unwrap();
        let there = sent.elapsed();
        assert_eq!(&got, b"ping");
        assert!(there >= one_way, "client to server took {there:?}");

        let sent = Instant::now();
        server.write_all(b"pong").await.unwrap();
        within("pong", client.read_exact(&mut got)).await.unwrap();
        let back = sent.elapsed();
        assert_eq!(&got, b"pong");
        assert!(back >= one_way, "server to client took {back:?}");
    }

    #[tokio::test]
    async fn the_delay_can_be_changed_while_connections_are_open() {
        let (server_addr, accepted) = one_connection_server().await;
        let proxy = DelayProxy::start(server_addr, Duration::ZERO).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut server = within("accept", accepted).await.unwrap();
        let one_way = Duration::from_millis(30);
        proxy.set_one_way(one_way);
        assert_eq!(proxy.one_way(), one_way);

        let sent = Instant::now();
        client.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        within("x", server.read_exact(&mut got)).await.unwrap();
        let took = sent.elapsed();
        assert!(took >= one_way, "took {took:?}");
    }

    /// Megabytes both ways at once through small queues: every byte arrives, in order, and the
    /// writer's backpressure (a full queue) never loses or reorders anything.
    #[tokio::test]
    async fn a_large_transfer_arrives_complete_and_in_order() {
        let proxy = DelayProxy::start(echo_server().await, Duration::from_micros(500)).unwrap();
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        // Not a repeating pattern: a reordered or repeated chunk would show.
        let sent: Vec<u8> = (0..8 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let expected = sent.clone();
        let writing = tokio::spawn(async move {
            write.write_all(&sent).await.unwrap();
            write.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        within("the echo", read.read_to_end(&mut received))
            .await
            .unwrap();
        within("the writer", writing).await.unwrap();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "the bytes differ");
    }

    #[tokio::test]
    async fn a_close_on_either_side_reaches_the_other() {
        let one_way = Duration::from_millis(5);
        // The client closes: the server reads the end of the stream, after the last bytes.
        let (server_addr, accepted) = one_connection_server().await;
        let proxy = DelayProxy::start(server_addr, one_way).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut server = within("accept", accepted).await.unwrap();
        client.write_all(b"last words").await.unwrap();
        drop(client);
        let mut got = Vec::new();
        within("the end", server.read_to_end(&mut got))
            .await
            .unwrap();
        assert_eq!(got, b"last words");

        // The server closes: the client reads the end of the stream.
        let (server_addr, accepted) = one_connection_server().await;
        let proxy_2 = DelayProxy::start(server_addr, one_way).unwrap();
        let mut client = TcpStream::connect(proxy_2.addr()).await.unwrap();
        let server = within("accept", accepted).await.unwrap();
        drop(server);
        let mut got = Vec::new();
        within("the end", client.read_to_end(&mut got))
            .await
            .unwrap();
        assert!(got.is_empty());
        drop(proxy);
    }

    #[tokio::test]
    async fn no_target_closes_the_connection_and_dropping_the_proxy_closes_everything() {
        let (server_addr, accepted) = one_connection_server().await;
        let proxy = DelayProxy::start(server_addr, Duration::ZERO).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let _server = within("accept", accepted).await.unwrap();
        let addr = proxy.addr();
        drop(proxy);
        let mut got = Vec::new();
        // Closed, cleanly or with a reset: either way the read ends.
        let _ = within("the end", client.read_to_end(&mut got)).await;
        assert!(got.is_empty());
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the port must refuse once the proxy is dropped"
        );

        // Nothing listens at the target: the proxy accepts, then closes.
        let nowhere = crate::ports::free_addr().unwrap();
        let proxy = DelayProxy::start(nowhere, Duration::ZERO).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut got = Vec::new();
        let _ = within("the end", client.read_to_end(&mut got)).await;
        assert!(got.is_empty());
    }
}
