//! When a request was written to its socket, read on the simulator's side.
//!
//! The bench times tick-to-order to the moment both order requests are
//! written to their sockets. The host cannot see that moment (its HTTP client
//! writes from a connection task of its own), and the simulator's handler
//! runs later still, after its own server has been scheduled. The kernel
//! knows: with `SO_TIMESTAMPNS` on the receiving socket, every segment is
//! stamped (`CLOCK_REALTIME`) as it is queued to it, and on loopback that
//! happens inside the sender's `write`. Reading with `recvmsg` hands the
//! stamp over with the bytes. Linux only; elsewhere connections carry no
//! stamp and arrivals fall back to the handler's clock.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The kernel's receive time of the last bytes read from one connection,
/// µs since the Unix epoch (0: none yet). Each request handler finds its
/// connection's clock in its `ConnectInfo`.
#[derive(Debug, Clone, Default)]
pub struct WireClock(Arc<AtomicU64>);

impl WireClock {
    /// When the bytes read last were written by the peer, if known.
    pub fn last_written(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, StampedListener>>
    for WireClock
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, StampedListener>) -> Self {
        stream.io().clock.clone()
    }
}

/// A TCP listener whose connections report when their bytes were written.
pub struct StampedListener(TcpListener);

impl StampedListener {
    /// Stamping is set on the listening socket too: its connections inherit
    /// it from the handshake on, so a request that arrives before `accept`
    /// returns is stamped, and the kernel turns stamping on before the first.
    pub fn new(listener: TcpListener) -> Self {
        if let Err(e) = sys::stamp_arrivals(&listener) {
            tracing::debug!(error = %e, "simulator: no receive timestamps");
        }
        StampedListener(listener)
    }
}

impl axum::serve::Listener for StampedListener {
    type Io = StampedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let io = StampedStream {
            io,
            clock: WireClock::default(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Waits (up to `within`) until the kernel stamps segments on loopback.
/// Linux turns stamping on for the whole system when the first socket asks,
/// but a moment later (from a work queue), so segments that arrive right
/// after the simulator's listeners asked may carry none. A probe connection
/// sends a byte at a time until one arrives stamped. `false` if none did.
pub async fn stamping_live(within: std::time::Duration) -> bool {
    let probe = async {
        let mut listener = StampedListener::new(TcpListener::bind("127.0.0.1:0").await?);
        let addr = axum::serve::Listener::local_addr(&listener)?;
        let mut client = TcpStream::connect(addr).await?;
        let (mut server, _) = axum::serve::Listener::accept(&mut listener).await;
        loop {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            client.write_all(b"?").await?;
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await?;
            if server.clock.last_written().is_some() {
                return Ok::<(), io::Error>(());
            }
            // No event tells when the kernel's switch flips: try again shortly.
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
    };
    matches!(tokio::time::timeout(within, probe).await, Ok(Ok(())))
}

/// A TCP stream that notes the kernel's receive time of what it reads.
pub struct StampedStream {
    io: TcpStream,
    clock: WireClock,
}

impl AsyncRead for StampedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            std::task::ready!(me.io.poll_read_ready(cx))?;
            match me
                .io
                .try_io(tokio::io::Interest::READABLE, || sys::read(&me.io, buf))
            {
                Ok((read, stamp)) => {
                    // Bytes without a stamp must not inherit the last one.
                    if read > 0 {
                        me.clock.0.store(stamp.unwrap_or(0), Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale; `try_io` cleared it, so wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::io::ReadBuf;
    use tokio::net::TcpStream;

    /// Asks the kernel to stamp every segment queued to `io`.
    pub fn stamp_arrivals(io: &impl AsRawFd) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, a c_int option value and its size.
        let r = unsafe {
            libc::setsockopt(
                io.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// One non-blocking `recvmsg` into `buf`'s free space: the bytes read,
    /// and the receive time (µs since the epoch) of the last segment read, if
    /// the kernel gave one.
    pub fn read(io: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<(usize, Option<u64>)> {
        // SAFETY: the kernel only writes into the unfilled part, and only the
        // `n` bytes it reports are marked initialised below.
        let free = unsafe { buf.unfilled_mut() };
        let mut iov = libc::iovec {
            iov_base: free.as_mut_ptr().cast(),
            iov_len: free.len(),
        };
        // Room for one timestamp message, 8-byte aligned as cmsg requires.
        let mut control = [0u64; 8];
        // SAFETY: an all-zero msghdr is valid; its pointers are set next.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(io.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the kernel wrote `n` bytes at the start of the free space.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        let mut stamp = None;
        // SAFETY: walks the control messages the kernel wrote into `control`,
        // within the length it set in `msg`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    stamp = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n, stamp.filter(|&at| at > 0)))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;

    use tokio::io::ReadBuf;
    use tokio::net::TcpStream;

    pub fn stamp_arrivals<T>(_: &T) -> io::Result<()> {
        Err(io::Error::other("receive timestamps are Linux only"))
    }

    pub fn read(io: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<(usize, Option<u64>)> {
        let n = io.try_read(buf.initialize_unfilled())?;
        buf.advance(n);
        Ok((n, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes written, then read only after a pause: the stamp is the write's
    /// time, not the read's.
    #[tokio::test]
    async fn a_read_reports_when_its_bytes_were_written_not_when_they_were_read() {
        let linux = cfg!(target_os = "linux");
        let mut listener = StampedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        if linux {
            assert!(stamping_live(std::time::Duration::from_secs(5)).await);
        }
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = axum::serve::Listener::accept(&mut listener).await;
        let before = crate::strategy::now_micros();
        client.write_all(b"hello").await.unwrap();
        let after = crate::strategy::now_micros();
        // Read well after the write.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let read_at = crate::strategy::now_micros();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        if linux {
            let at = server.clock.last_written().expect("a receive timestamp");
            assert!(
                (before..=after).contains(&at),
                "stamped {at}, written between {before} and {after}"
            );
            assert!(read_at - at >= 25_000, "the stamp is not the read's time");
        }
        // The stream still writes as a plain one.
        server.write_all(b"ok").await.unwrap();
        let mut ok = [0u8; 2];
        client.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"ok");
    }
}
