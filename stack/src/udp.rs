//! UDP sockets: bound ports with bounded receive queues.
//!
//! Received payloads are copied into one byte ring per socket (no allocation per datagram once
//! the ring has grown to its bound); a datagram that does not fit is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// A bound UDP socket, as the application names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Why a UDP call failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UdpError {
    /// The port is already bound.
    AddrInUse,
    /// The handle does not name an open socket.
    InvalidHandle,
    /// The datagram is larger than fits in one frame (no fragmentation).
    TooLarge,
    /// No buffer space for the datagram now.
    NoBuffer,
    /// No route / unresolvable next hop.
    Unreachable,
}

impl core::fmt::Display for UdpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            UdpError::AddrInUse => "UDP port already bound",
            UdpError::InvalidHandle => "invalid UDP socket handle",
            UdpError::TooLarge => "datagram larger than the MTU allows",
            UdpError::NoBuffer => "no buffer space",
            UdpError::Unreachable => "destination unreachable",
        })
    }
}

impl std::error::Error for UdpError {}

/// Metadata of a queued datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpMeta {
    /// Sender.
    pub src: SocketAddrV4,
    /// The local address it was sent to.
    pub dst: Ipv4Addr,
    /// Payload length.
    pub len: usize,
}

#[derive(Debug)]
struct UdpSocket {
    port: u16,
    generation: u32,
    bytes: VecDeque<u8>,
    meta: VecDeque<UdpMeta>,
    max_bytes: usize,
    max_datagrams: usize,
}

/// The table of bound UDP sockets, indexed by port in O(1).
#[derive(Debug, Default)]
pub struct UdpSockets {
    slots: Vec<Option<UdpSocket>>,
    free: Vec<u32>,
    by_port: HashMap<u16, u32>,
    generation: u32,
}

impl UdpSockets {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bind `port` with a receive queue of at most `max_bytes` payload bytes and
    /// `max_datagrams` datagrams.
    pub fn bind(
        &mut self,
        port: u16,
        max_bytes: usize,
        max_datagrams: usize,
    ) -> Result<UdpHandle, UdpError> {
        if self.by_port.contains_key(&port) {
            return Err(UdpError::AddrInUse);
        }
        self.generation = self.generation.wrapping_add(1);
        let socket = UdpSocket {
            port,
            generation: self.generation,
            bytes: VecDeque::new(),
            meta: VecDeque::new(),
            max_bytes,
            max_datagrams,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(socket);
                i
            }
            None => {
                self.slots.push(Some(socket));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_port.insert(port, index);
        Ok(UdpHandle {
            index,
            generation: self.generation,
        })
    }

    /// Close a socket; queued datagrams are discarded.
    pub fn close(&mut self, handle: UdpHandle) -> Result<(), UdpError> {
        let port = self.get(handle)?.port;
        self.slots[handle.index as usize] = None;
        self.free.push(handle.index);
        self.by_port.remove(&port);
        Ok(())
    }

    fn get(&self, handle: UdpHandle) -> Result<&UdpSocket, UdpError> {
        match self.slots.get(handle.index as usize) {
            Some(Some(s)) if s.generation == handle.generation => Ok(s),
            _ => Err(UdpError::InvalidHandle),
        }
    }

    fn get_mut(&mut self, handle: UdpHandle) -> Result<&mut UdpSocket, UdpError> {
        match self.slots.get_mut(handle.index as usize) {
            Some(Some(s)) if s.generation == handle.generation => Ok(s),
            _ => Err(UdpError::InvalidHandle),
        }
    }

    /// The local port of a socket.
    pub fn port(&self, handle: UdpHandle) -> Result<u16, UdpError> {
        Ok(self.get(handle)?.port)
    }

    /// The socket bound to `port`, if any.
    pub fn lookup(&self, port: u16) -> Option<UdpHandle> {
        let index = *self.by_port.get(&port)?;
        let socket = self.slots[index as usize].as_ref()?;
        Some(UdpHandle {
            index,
            generation: socket.generation,
        })
    }

    /// Queue a received datagram. `Err(NoBuffer)` when the queue is full (the caller counts it).
    pub fn deliver(
        &mut self,
        handle: UdpHandle,
        meta: UdpMeta,
        payload: &[u8],
    ) -> Result<(), UdpError> {
        let s = self.get_mut(handle)?;
        if s.meta.len() >= s.max_datagrams || s.bytes.len() + payload.len() > s.max_bytes {
            return Err(UdpError::NoBuffer);
        }
        s.bytes.extend(payload);
        s.meta.push_back(UdpMeta {
            len: payload.len(),
            ..meta
        });
        Ok(())
    }

    /// Take the oldest datagram: copies up to `buf.len()` bytes (the rest of a longer datagram is
    /// discarded, as with a kernel socket) and returns its metadata.
    pub fn recv_from(
        &mut self,
        handle: UdpHandle,
        buf: &mut [u8],
    ) -> Result<Option<(UdpMeta, usize)>, UdpError> {
        let s = self.get_mut(handle)?;
        let Some(meta) = s.meta.pop_front() else {
            return Ok(None);
        };
        let n = meta.len.min(buf.len());
        for (dst, src) in buf[..n].iter_mut().zip(s.bytes.drain(..meta.len)) {
            *dst = src;
        }
        Ok(Some((meta, n)))
    }

    /// Datagrams waiting on a socket.
    pub fn queued(&self, handle: UdpHandle) -> Result<usize, UdpError> {
        Ok(self.get(handle)?.meta.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> UdpMeta {
        UdpMeta {
            src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5000),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            len: 0,
        }
    }

    #[test]
    fn bind_deliver_receive_close() {
        let mut t = UdpSockets::new();
        let h = t.bind(7, 1024, 4).unwrap();
        assert_eq!(t.bind(7, 1024, 4), Err(UdpError::AddrInUse));
        assert_eq!(t.lookup(7), Some(h));
        t.deliver(h, meta(), b"hello").unwrap();
        t.deliver(h, meta(), b"world!").unwrap();
        let mut buf = [0u8; 3];
        let (m, n) = t.recv_from(h, &mut buf).unwrap().unwrap();
        assert_eq!((m.len, n, &buf), (5, 3, b"hel"));
        let mut buf = [0u8; 16];
        let (m, n) = t.recv_from(h, &mut buf).unwrap().unwrap();
        assert_eq!((m.len, &buf[..n]), (6, &b"world!"[..]));
        assert_eq!(t.recv_from(h, &mut buf).unwrap(), None);
        t.close(h).unwrap();
        assert_eq!(t.lookup(7), None);
        assert_eq!(t.recv_from(h, &mut buf), Err(UdpError::InvalidHandle));
    }

    #[test]
    fn queue_bounds_are_enforced() {
        let mut t = UdpSockets::new();
        let h = t.bind(9, 8, 2).unwrap();
        assert_eq!(t.deliver(h, meta(), b"123456789"), Err(UdpError::NoBuffer));
        t.deliver(h, meta(), b"1").unwrap();
        t.deliver(h, meta(), b"2").unwrap();
        assert_eq!(t.deliver(h, meta(), b"3"), Err(UdpError::NoBuffer));
        assert_eq!(t.queued(h).unwrap(), 2);
    }

    #[test]
    fn stale_handles_are_rejected_after_slot_reuse() {
        let mut t = UdpSockets::new();
        let a = t.bind(1, 8, 2).unwrap();
        t.close(a).unwrap();
        let b = t.bind(2, 8, 2).unwrap();
        assert_eq!(a.index, b.index);
        assert_eq!(t.port(a), Err(UdpError::InvalidHandle));
        assert_eq!(t.port(b), Ok(2));
    }
}
