//! Commands from the control thread to the data plane, over crossbeam channels.
//!
//! The data plane never blocks: each poll-loop turn it takes at most one request with `try_recv`
//! and answers on the request's own reply channel. The control thread (telemetry HTTP server)
//! waits for the answers with a timeout, so a stuck data plane shows up as a timeout, not a hang.

use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use saps_stack::tcp::ConnInfo;

use crate::runtime::PortContext;

/// One TCP connection as the operator sees it.
#[derive(Clone, Debug)]
pub struct ConnectionRow {
    /// Port (configured name) the connection lives on.
    pub port: String,
    /// Local address.
    pub local: SocketAddrV4,
    /// Remote address.
    pub remote: SocketAddrV4,
    /// State and transmission details.
    pub info: ConnInfo,
}

/// A request to a data-plane thread.
#[derive(Debug)]
pub enum ControlRequest {
    /// List up to `limit` TCP connections.
    Connections {
        /// Most rows to return.
        limit: usize,
        /// Where to send them.
        reply: Sender<Vec<ConnectionRow>>,
    },
}

/// The control thread's handle on every data-plane thread.
#[derive(Clone, Debug, Default)]
pub struct ControlClient {
    threads: Vec<Sender<ControlRequest>>,
}

/// Create the channel for one data-plane thread: the client side is added to `client`, the
/// receiver goes to the thread.
pub fn channel(client: &mut ControlClient) -> Receiver<ControlRequest> {
    let (tx, rx) = bounded(16);
    client.threads.push(tx);
    rx
}

impl ControlClient {
    /// Ask every data-plane thread for its connections; waits at most `timeout` per thread.
    pub fn connections(
        &self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<ConnectionRow>, String> {
        let mut rows = Vec::new();
        for (i, thread) in self.threads.iter().enumerate() {
            let (reply, answer) = bounded(1);
            thread
                .try_send(ControlRequest::Connections {
                    limit: limit.saturating_sub(rows.len()),
                    reply,
                })
                .map_err(|e| format!("data-plane thread {i}: {e}"))?;
            rows.extend(
                answer
                    .recv_timeout(timeout)
                    .map_err(|e| format!("data-plane thread {i} did not answer: {e}"))?,
            );
        }
        Ok(rows)
    }
}

/// Answer one pending request, if any (called once per poll-loop turn; never blocks).
pub fn serve_one(rx: &Receiver<ControlRequest>, ports: &[PortContext]) {
    let Ok(request) = rx.try_recv() else {
        return;
    };
    match request {
        ControlRequest::Connections { limit, reply } => {
            let mut rows = Vec::new();
            'ports: for ctx in ports {
                for (local, remote, info) in ctx.iface.tcp_connections() {
                    if rows.len() >= limit {
                        break 'ports;
                    }
                    rows.push(ConnectionRow {
                        port: ctx.name.clone(),
                        local,
                        remote,
                        info,
                    });
                }
            }
            let _ = reply.try_send(rows);
        }
    }
}

/// Render connections as an `ss`-like text table.
pub fn render_connections(rows: &[ConnectionRow]) -> String {
    let mut out = String::from(
        "port local remote state srtt_us rto_ms cwnd ssthresh snd_wnd rcv_wnd in_flight send_queued recv_available ooo mss retrans recovery options\n",
    );
    for r in rows {
        let i = &r.info;
        let mut opts = Vec::new();
        if i.timestamps {
            opts.push("ts".to_string());
        }
        if i.sack {
            opts.push("sack".to_string());
        }
        if let Some((ours, peer)) = i.window_scale {
            opts.push(format!("wscale:{peer},{ours}"));
        }
        if let Some(rate) = i.pacing_rate {
            opts.push(format!("pacing:{}bps", rate.saturating_mul(8)));
        }
        let _ = writeln!(
            out,
            "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            r.port,
            r.local,
            r.remote,
            i.state.name(),
            i.srtt
                .map(|d| d.total_micros().to_string())
                .unwrap_or_else(|| "-".into()),
            i.rto.total_millis(),
            i.cwnd,
            i.ssthresh,
            i.snd_wnd,
            i.rcv_wnd,
            i.bytes_in_flight,
            i.send_queued,
            i.recv_available,
            i.ooo_bytes,
            i.mss,
            i.retransmits,
            i.in_recovery,
            if opts.is_empty() {
                "-".into()
            } else {
                opts.join(",")
            }
        );
    }
    out
}
