//! A terminal in the browser: a WebSocket carrying an exec TTY (`/bin/bash -l`) in a node.
//!
//! Protocol: binary frames carry terminal bytes both ways (UTF-8 is the terminal's business, so
//! a character split across frames is fine); the browser sends text frames
//! `{"type":"resize","cols":C,"rows":R}`; the server ends with a text frame
//! `{"type":"exit","code":N}` or `{"type":"closed","reason":"..."}` and closes.
//!
//! Authorisation happens before the upgrade (administrator, or the student owning the lab;
//! 401/403 otherwise, with nothing said about the lab). The terminal closes when its lab is
//! deleted, expires or loses its token, found by the controller's events and a periodic look at
//! the store.

use crate::access::Api;
use crate::controller::now;
use crate::store::{EventRow, LabState};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;
use v6lab_runtime::runtime::Terminal;

/// Largest message accepted from a browser (a paste).
const MAX_MESSAGE: usize = 1 << 20;

/// Terminals open at once on one lab (each is a shell in a node).
const MAX_PER_LAB: usize = 16;

/// One open terminal of a lab, counted while it lives.
struct Slot(String);

fn open_terminals() -> &'static Mutex<HashMap<String, usize>> {
    static OPEN: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl Slot {
    fn take(lab: &str) -> Option<Slot> {
        let mut open = open_terminals().lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(lab.to_owned()).or_insert(0);
        if *n >= MAX_PER_LAB {
            return None;
        }
        *n += 1;
        Some(Slot(lab.to_owned()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = open_terminals().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.0);
            }
        }
    }
}

fn refuse(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(json!({"error": msg}))).into_response()
}

/// Whether an `Origin` header (sent by browsers on every WebSocket handshake) is this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser: cookies are not involved
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

pub async fn terminal(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((lab, node)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // Who first (session cookie or token), before anything about the lab is looked at or the
    // connection upgraded: another student's lab gets 403, like a lab that does not exist.
    let who = match api.lab_access(&headers, peer, &lab) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "forbidden");
    }
    let l = match api.ctl.store.lab(&lab) {
        Ok(Some(l)) => l,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such lab"),
        Err(e) => {
            tracing::error!(error = %e, "terminal");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    if l.state != LabState::Ready {
        return refuse(StatusCode::CONFLICT, "the lab is not ready yet");
    }
    let known = v6lab_core::replan(&l.topology_name, l.topology.as_bytes())
        .is_ok_and(|(_, p)| p.nodes.iter().any(|n| n.name == node));
    if !known {
        return refuse(StatusCode::NOT_FOUND, "no such node");
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let Some(slot) = Slot::take(&lab) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many terminals are open on this lab; close one first",
        );
    };
    let token = l.token.clone();
    let class = l.class.clone();
    tracing::info!(lab, node, ?who, "terminal opened");
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            run(api, lab, node, class, token, socket).await;
            drop(slot);
        })
}

#[derive(Deserialize)]
struct Control {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    cols: u16,
    #[serde(default)]
    rows: u16,
}

/// Whether an event means the lab is gone.
fn ends(e: &EventRow, lab: &str, class: Option<&str>) -> bool {
    match e.lab.as_deref() {
        Some(l) if l == lab => matches!(
            e.kind.as_str(),
            "deleting" | "deleted" | "expired" | "forgotten"
        ),
        None => e.kind == "class-deleted" && class.is_some() && e.class.as_deref() == class,
        _ => false,
    }
}

/// Whether the lab still exists, with the same token, and has time left.
fn still_there(api: &Api, lab: &str, token: &str) -> bool {
    matches!(api.ctl.store.lab(lab), Ok(Some(l)) if l.token == token && l.expires > now())
}

async fn run(
    api: Api,
    lab: String,
    node: String,
    class: Option<String>,
    token: String,
    socket: WebSocket,
) {
    let (mut tx, mut rx) = socket.split();
    let (mut stdin_w, stdin_r) = tokio::io::duplex(64 * 1024);
    let (stdout_w, mut stdout_r) = tokio::io::duplex(64 * 1024);
    let (resize_tx, resize_rx) = tokio::sync::mpsc::unbounded_channel::<(u16, u16)>();
    let _ = resize_tx.send((80, 24));

    let ctl = api.ctl.clone();
    let (l, n) = (lab.clone(), node.clone());
    let mut exec = tokio::spawn(async move {
        let argv = ["/bin/bash".to_string(), "-l".to_string()];
        let mut stdout_w = stdout_w;
        let term = Terminal {
            stdin: Box::new(stdin_r),
            stdout: &mut stdout_w,
            resize: Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(
                resize_rx,
            )),
        };
        ctl.runtime.exec_interactive(&l, &n, &argv, term).await
    });

    // Browser to terminal, in its own task: a slow terminal never stalls the output below.
    let mut input = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let written = match msg {
                Message::Binary(b) => stdin_w.write_all(&b).await,
                Message::Text(t) => match serde_json::from_str::<Control>(&t) {
                    Ok(c) if c.kind == "resize" => {
                        let size = (c.cols.clamp(1, 1000), c.rows.clamp(1, 1000));
                        let _ = resize_tx.send(size);
                        Ok(())
                    }
                    // Plain text is typed input too.
                    _ => stdin_w.write_all(t.as_bytes()).await,
                },
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = stdin_w.shutdown().await;
    });

    let mut events = api.ctl.events.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pings = 0u32;
    let mut buf = vec![0u8; 16 * 1024];
    let end = loop {
        tokio::select! {
            n = stdout_r.read(&mut buf) => match n {
                Ok(n) if n > 0 => {
                    let out = axum::body::Bytes::copy_from_slice(&buf[..n]);
                    if tx.send(Message::Binary(out)).await.is_err() {
                        break None;
                    }
                }
                _ => {
                    // The command ended (or never started): tell how.
                    let r = tokio::time::timeout(Duration::from_secs(10), &mut exec).await;
                    break Some(match r {
                        Ok(Ok(Ok(code))) => json!({"type": "exit", "code": code}),
                        Ok(Ok(Err(e))) => {
                            tracing::warn!(lab, node, error = %e, "terminal");
                            json!({"type": "closed", "reason": format!("the terminal failed: {e}")})
                        }
                        _ => json!({"type": "closed", "reason": "the terminal ended"}),
                    });
                }
            },
            _ = &mut input => break None,
            e = events.recv() => match e {
                Ok(e) if ends(&e, &lab, class.as_deref()) => {
                    break Some(json!({"type": "closed", "reason": "your lab was removed"}));
                }
                Err(RecvError::Closed) => break None,
                _ => {}
            },
            _ = tick.tick() => {
                if !still_there(&api, &lab, &token) {
                    break Some(json!({"type": "closed", "reason": "your lab has ended"}));
                }
                pings += 1;
                if pings.is_multiple_of(5) && tx.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(msg) = end {
        let _ = tx.send(Message::Text(msg.to_string().into())).await;
    }
    let _ = tx.send(Message::Close(None)).await;
    input.abort();
    exec.abort();
    tracing::info!(lab, node, "terminal closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(lab: Option<&str>, class: Option<&str>, kind: &str) -> EventRow {
        EventRow {
            id: 1,
            ts: 0,
            lab: lab.map(str::to_owned),
            class: class.map(str::to_owned),
            kind: kind.into(),
            message: String::new(),
        }
    }

    #[test]
    fn terminals_end_with_their_lab() {
        assert!(ends(&ev(Some("a"), None, "deleting"), "a", None));
        assert!(ends(&ev(Some("a"), Some("c"), "expired"), "a", Some("c")));
        assert!(ends(&ev(None, Some("c"), "class-deleted"), "a", Some("c")));
        assert!(!ends(&ev(Some("b"), None, "deleting"), "a", None));
        assert!(!ends(&ev(Some("a"), None, "exercise-passed"), "a", None));
        assert!(!ends(&ev(None, Some("c"), "class-deleted"), "a", None));
    }

    #[test]
    fn terminals_per_lab_are_bounded() {
        let slots: Vec<Slot> = (0..MAX_PER_LAB)
            .map(|_| Slot::take("bounded-lab").expect("a free slot"))
            .collect();
        assert!(Slot::take("bounded-lab").is_none());
        assert!(Slot::take("other-lab").is_some());
        drop(slots);
        assert!(Slot::take("bounded-lab").is_some());
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "10.0.0.5:7464".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://10.0.0.5:7464".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
