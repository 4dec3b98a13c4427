//! The simulator's HTTP server: an accept loop over one TCP listener, with one task per
//! connection, that can go offline and come back on the same address.
//!
//! Offline, the listening socket is closed, so new connections are refused, and every open
//! connection is dropped, so calls in progress fail as if the network broke. The port stays
//! bound by a socket that does not listen, so that no other program can take it before the
//! server comes back.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Mutex};
use tokio::task::{JoinHandle, JoinSet};

/// Connections the kernel queues for an accept after the server comes back online.
const LISTEN_BACKLOG: u32 = 1024;

/// A stop request for the accept loop and its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Keep serving.
    No,
    /// Stop accepting, let requests in progress finish, then close the connections.
    Graceful,
    /// Stop accepting and drop every connection at once.
    Abort,
}

/// The server of one simulator instance.
pub(crate) struct Server {
    address: SocketAddr,
    app: Router,
    status: Mutex<Status>,
}

/// Whether the server is serving, offline or stopped for good.
enum Status {
    Online(AcceptLoop),
    /// Offline: the socket keeps the port bound without listening.
    Offline(TcpSocket),
    Stopped,
}

/// A running accept loop and the sender that stops it. Dropping the sender stops the loop
/// gracefully, so the server also stops once every handle to it is gone.
struct AcceptLoop {
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts serving `app` on `listener` in a spawned task.
    pub(crate) fn start(listener: TcpListener, app: Router) -> io::Result<Self> {
        let address = listener.local_addr()?;
        let accept_loop = AcceptLoop::spawn(listener, app.clone());
        Ok(Self {
            address,
            app,
            status: Mutex::new(Status::Online(accept_loop)),
        })
    }

    /// Closes the listening socket and drops every open connection, keeping the port bound.
    /// Does nothing when the server is already offline or stopped.
    ///
    /// # Errors
    ///
    /// Fails when the port cannot be bound again after the listener closed, for example
    /// because another program took it in that moment; the server is then stopped.
    pub(crate) async fn go_offline(&self) -> io::Result<()> {
        let mut status = self.status.lock().await;
        let Status::Online(accept_loop) = std::mem::replace(&mut *status, Status::Stopped) else {
            return Ok(());
        };
        accept_loop.stop(Stop::Abort).await;
        let socket = bind_without_listening(self.address)?;
        *status = Status::Offline(socket);
        tracing::info!(address = %self.address, "okta-sim went offline");
        Ok(())
    }

    /// Listens again on the same address after [`Server::go_offline`]. Does nothing when the
    /// server is online or stopped.
    ///
    /// # Errors
    ///
    /// Fails when the socket cannot listen; the server is then stopped.
    pub(crate) async fn go_online(&self) -> io::Result<()> {
        let mut status = self.status.lock().await;
        let Status::Offline(socket) = std::mem::replace(&mut *status, Status::Stopped) else {
            return Ok(());
        };
        let listener = socket.listen(LISTEN_BACKLOG)?;
        *status = Status::Online(AcceptLoop::spawn(listener, self.app.clone()));
        tracing::info!(address = %self.address, "okta-sim is online again");
        Ok(())
    }

    /// Stops accepting, lets requests in progress finish, and waits for the accept loop to end.
    /// An offline server releases its port.
    pub(crate) async fn shutdown(&self) {
        let mut status = self.status.lock().await;
        if let Status::Online(accept_loop) = std::mem::replace(&mut *status, Status::Stopped) {
            accept_loop.stop(Stop::Graceful).await;
        }
    }
}

impl AcceptLoop {
    fn spawn(listener: TcpListener, app: Router) -> Self {
        let (stop, stopped) = watch::channel(Stop::No);
        let task = tokio::spawn(accept_connections(listener, app, stopped));
        Self { stop, task }
    }

    async fn stop(self, stop_request: Stop) {
        self.stop.send_replace(stop_request);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "okta-sim accept loop ended abnormally");
        }
    }
}

/// Accepts connections until stopped, then closes the listener and ends the
/// connections as `Stop` specifies.
async fn accept_connections(
    listener: TcpListener,
    app: Router,
    mut stopped: watch::Receiver<Stop>,
) {
    let mut connections = JoinSet::new();
    let stop_request = loop {
        tokio::select! {
            stop_request = stop_requested(&mut stopped) => break stop_request,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone(), stopped.clone()));
                }
                Err(error) => {
                    // Such as too many open files; accepting again at once would spin.
                    tracing::warn!(%error, "okta-sim failed to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);
    if stop_request == Stop::Abort {
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}

/// Serves HTTP/1.1 on one connection until the client closes it or the server stops. A
/// graceful stop lets the request in progress finish; an abort drops the task, and with it
/// the connection.
async fn serve_connection(stream: TcpStream, app: Router, mut stopped: watch::Receiver<Stop>) {
    let service = TowerToHyperService::new(app);
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = stop_requested(&mut stopped) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "okta-sim connection ended with an error");
    }
}

/// Resolves with the requested stop. A dropped sender counts as a graceful stop.
async fn stop_requested(stopped: &mut watch::Receiver<Stop>) -> Stop {
    match stopped
        .wait_for(|stop_request| *stop_request != Stop::No)
        .await
    {
        Ok(stop_request) => *stop_request,
        Err(_) => Stop::Graceful,
    }
}

/// Binds a new socket to `address` without listening on it, so connections to it are refused.
/// `SO_REUSEADDR` lets it bind while connections of the closed listener are in `TIME_WAIT`.
fn bind_without_listening(address: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket)
}
