//! The TCP side: record marking, many calls in flight per connection, bounded memory.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::dispatch::{Reply, Service};
use super::rpc::MAX_RECORD;

/// Calls of one connection handled at the same time.
const IN_FLIGHT_PER_CONNECTION: usize = 16;
/// Connections served at the same time; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;

/// Read one RPC record (all its fragments); `Ok(None)` at a clean end of the stream.
async fn read_record(s: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    loop {
        let mut head = [0u8; 4];
        match s.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && record.is_empty() => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let word = u32::from_be_bytes(head);
        let last = word & 0x8000_0000 != 0;
        let len = (word & 0x7fff_ffff) as usize;
        if record.len() + len > MAX_RECORD {
            return Err(std::io::Error::other("RPC record too large"));
        }
        let start = record.len();
        record.resize(start + len, 0);
        s.read_exact(&mut record[start..]).await?;
        if last {
            return Ok(Some(record));
        }
    }
}

/// Write one reply as one record: its mark, its bytes and its READ data straight from the
/// cached chunks, with as few `writev` calls as the socket allows.
async fn write_reply(wr: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    const PAD: [u8; 3] = [0; 3];
    let mark = (0x8000_0000u32 | reply.len() as u32).to_be_bytes();
    let mut parts: Vec<IoSlice> = Vec::with_capacity(3 + reply.data.len());
    parts.push(IoSlice::new(&mark));
    parts.push(IoSlice::new(&reply.head));
    parts.extend(reply.data.iter().map(|s| IoSlice::new(s.bytes())));
    parts.push(IoSlice::new(&PAD[..reply.pad.min(3)]));
    let mut rest = &mut parts[..];
    while !rest.is_empty() {
        match wr.write_vectored(rest).await? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => IoSlice::advance_slices(&mut rest, n),
        }
    }
    Ok(())
}

async fn connection(stream: TcpStream, peer: SocketAddr, service: Arc<Service>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Reply>(IN_FLIGHT_PER_CONNECTION);
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            if write_reply(&mut wr, &reply).await.is_err() {
                break;
            }
        }
    });
    let slots = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    loop {
        let record = match read_record(&mut rd).await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!("nfs: {peer}: closing connection: {e}");
                break;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let service = service.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let reply =
                tokio::task::spawn_blocking(move || service.call_reply(peer, &record)).await;
            if let Ok(Some(reply)) = reply {
                let _ = tx.send(reply).await;
            }
            drop(permit);
        });
    }
    drop(tx);
    let _ = writer.await;
}

/// Serve until the listener fails.
pub async fn serve(listener: TcpListener, service: Arc<Service>) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (stream, peer) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            connection(stream, peer, service).await;
            drop(permit);
        });
    }
}
