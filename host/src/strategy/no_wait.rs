//! WASI io for plugins that never waits: each call that wasmtime-wasi's
//! synchronous bindings would block on completes on its first poll, or faults
//! the plugin.
//!
//! wasmtime-wasi runs those calls (stream flushes and drops, `poll`, UDP
//! sockets) through `in_tokio`, which `block_on`s the ambient tokio runtime.
//! On a thread of its own that is a detour; on a tokio worker, where the host
//! evaluates plugins inline on the feed's task, it panics the host ("Cannot
//! start a runtime from within a runtime"). Nothing a plugin can reach needs a
//! runtime: its stdio is a sink (always ready), stdin is closed, files and
//! sockets are off, and clock waits are refused (`forbid_sleeping`).
//! So the same futures are polled once here, without a runtime, and a future
//! that is not ready is a plugin trying to wait.

use std::future::Future;

use futures_util::FutureExt;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::sockets::network;
use wasmtime_wasi::p2::bindings::sync::io::{poll as sync_poll, streams as sync_streams};
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket as sync_udp_create;
use wasmtime_wasi::p2::{
    DynPollable, SocketError, SocketResult, StreamError, StreamResult, UdpSocket,
};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};
use wasmtime_wasi_io::bindings::wasi::io::{poll as async_poll, streams as async_streams};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use super::state::PluginState;

/// What a plugin is told when a blocking call is not ready at once.
const NO_WAITING: &str = "plugins may not wait: a blocking WASI call was not ready at once (it would hold every plugin's decisions)";

/// The call's future polled once (`now_or_never`: no runtime, no waker to
/// call back); not ready is a plugin trying to wait.
fn ready<T>(f: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    f.now_or_never()
        .unwrap_or_else(|| Err(wasmtime::Error::msg(NO_WAITING)))
}

fn ready_stream<T>(f: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    f.now_or_never()
        .unwrap_or_else(|| Err(StreamError::Trap(wasmtime::Error::msg(NO_WAITING))))
}

/// Refuses clock waits and replaces wasmtime-wasi's blocking io (and UDP
/// socket creation) in `linker`, which must already hold
/// `add_to_linker_sync`'s definitions.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    forbid_sleeping(linker)?;
    sync_poll::add_to_linker::<PluginState, NoWaitIo>(linker, |s| NoWait(s.ctx().table))?;
    sync_streams::add_to_linker::<PluginState, NoWaitIo>(linker, |s| NoWait(s.ctx().table))?;
    sync_udp_create::add_to_linker::<PluginState, NoWaitSockets>(linker, |s| NoWait(s.sockets()))?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The WASI clocks package the linker holds (`wasmtime-wasi`'s); a plugin's
/// import of any 0.2 version resolves to it. The hostile-plugin test fails if
/// an upgrade moves it and the functions below stop shadowing it.
const WASI_MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Why a plugin that subscribes to a clock faults.
const NO_SLEEPING: &str = "plugins may not wait: a monotonic-clock subscription (a sleep) blocks where no deadline reaches";

/// A WASI clock wait (`subscribe-duration`, `subscribe-instant`, what a
/// `sleep` is made of) blocks inside the host, where no epoch deadline
/// reaches: a plugin could hold the thread evaluating it (a feed's, inline)
/// for an hour, or for good.
/// No rule has a reason to wait, so subscribing to a clock faults the plugin.
/// Every other pollable a plugin can make (its stdio) is always ready.
fn forbid_sleeping(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    type Subscribed = wasmtime::Result<(Resource<DynPollable>,)>;
    let mut clock = linker.instance(WASI_MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |_, (_,): (u64,)| -> Subscribed {
        Err(wasmtime::Error::msg(NO_SLEEPING))
    })?;
    clock.func_wrap("subscribe-instant", |_, (_,): (u64,)| -> Subscribed {
        Err(wasmtime::Error::msg(NO_SLEEPING))
    })?;
    Ok(())
}

/// A WASI view whose blocking calls are polled once.
pub(crate) struct NoWait<T>(T);

struct NoWaitIo;

impl HasData for NoWaitIo {
    type Data<'a> = NoWait<&'a mut ResourceTable>;
}

struct NoWaitSockets;

impl HasData for NoWaitSockets {
    type Data<'a> = NoWait<WasiSocketsCtxView<'a>>;
}

impl sync_poll::Host for NoWait<&mut ResourceTable> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        ready(async_poll::Host::poll(self.0, pollables))
    }
}

impl sync_poll::HostPollable for NoWait<&mut ResourceTable> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        ready(async_poll::HostPollable::ready(self.0, pollable))
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        ready(async_poll::HostPollable::block(self.0, pollable))
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl sync_streams::Host for NoWait<&mut ResourceTable> {
    fn convert_stream_error(
        &mut self,
        err: StreamError,
    ) -> wasmtime::Result<sync_streams::StreamError> {
        sync_streams::Host::convert_stream_error(self.0, err)
    }
}

type Out = Resource<DynOutputStream>;
type In = Resource<DynInputStream>;

impl sync_streams::HostOutputStream for NoWait<&mut ResourceTable> {
    fn drop(&mut self, stream: Out) -> wasmtime::Result<()> {
        ready(async_streams::HostOutputStream::drop(self.0, stream))
    }
    fn check_write(&mut self, stream: Out) -> StreamResult<u64> {
        sync_streams::HostOutputStream::check_write(self.0, stream)
    }
    fn write(&mut self, stream: Out, bytes: Vec<u8>) -> StreamResult<()> {
        sync_streams::HostOutputStream::write(self.0, stream, bytes)
    }
    fn blocking_write_and_flush(&mut self, stream: Out, bytes: Vec<u8>) -> StreamResult<()> {
        ready_stream(async_streams::HostOutputStream::blocking_write_and_flush(
            self.0, stream, bytes,
        ))
    }
    fn blocking_write_zeroes_and_flush(&mut self, stream: Out, len: u64) -> StreamResult<()> {
        ready_stream(
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(self.0, stream, len),
        )
    }
    fn subscribe(&mut self, stream: Out) -> wasmtime::Result<Resource<DynPollable>> {
        sync_streams::HostOutputStream::subscribe(self.0, stream)
    }
    fn write_zeroes(&mut self, stream: Out, len: u64) -> StreamResult<()> {
        sync_streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }
    fn flush(&mut self, stream: Out) -> StreamResult<()> {
        sync_streams::HostOutputStream::flush(self.0, stream)
    }
    fn blocking_flush(&mut self, stream: Out) -> StreamResult<()> {
        ready_stream(async_streams::HostOutputStream::blocking_flush(
            self.0, stream,
        ))
    }
    fn splice(&mut self, dst: Out, src: In, len: u64) -> StreamResult<u64> {
        sync_streams::HostOutputStream::splice(self.0, dst, src, len)
    }
    fn blocking_splice(&mut self, dst: Out, src: In, len: u64) -> StreamResult<u64> {
        ready_stream(async_streams::HostOutputStream::blocking_splice(
            self.0, dst, src, len,
        ))
    }
}

impl sync_streams::HostInputStream for NoWait<&mut ResourceTable> {
    fn drop(&mut self, stream: In) -> wasmtime::Result<()> {
        ready(async_streams::HostInputStream::drop(self.0, stream))
    }
    fn read(&mut self, stream: In, len: u64) -> StreamResult<Vec<u8>> {
        sync_streams::HostInputStream::read(self.0, stream, len)
    }
    fn blocking_read(&mut self, stream: In, len: u64) -> StreamResult<Vec<u8>> {
        ready_stream(async_streams::HostInputStream::blocking_read(
            self.0, stream, len,
        ))
    }
    fn skip(&mut self, stream: In, len: u64) -> StreamResult<u64> {
        sync_streams::HostInputStream::skip(self.0, stream, len)
    }
    fn blocking_skip(&mut self, stream: In, len: u64) -> StreamResult<u64> {
        ready_stream(async_streams::HostInputStream::blocking_skip(
            self.0, stream, len,
        ))
    }
    fn subscribe(&mut self, stream: In) -> wasmtime::Result<Resource<DynPollable>> {
        sync_streams::HostInputStream::subscribe(self.0, stream)
    }
}

impl sync_udp_create::Host for NoWait<WasiSocketsCtxView<'_>> {
    fn create_udp_socket(
        &mut self,
        family: sync_udp_create::IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        use wasmtime_wasi::p2::bindings::sockets::udp_create_socket::Host as Async;
        match Async::create_udp_socket(&mut self.0, family).now_or_never() {
            Some(r) => r,
            None => Err(wasmtime_wasi::TrappableError::trap(wasmtime::Error::msg(
                NO_WAITING,
            ))),
        }
    }
}

// Socket errors convert as wasmtime-wasi converts them.
impl network::Host for NoWait<WasiSocketsCtxView<'_>> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<network::ErrorCode> {
        network::Host::convert_error_code(&mut self.0, error)
    }
    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<network::ErrorCode>> {
        network::Host::network_error_code(&mut self.0, err)
    }
}

impl network::HostNetwork for NoWait<WasiSocketsCtxView<'_>> {
    fn drop(&mut self, this: Resource<network::Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.0, this)
    }
}
