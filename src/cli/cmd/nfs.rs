//! `yester nfs serve`: export the view over NFSv3.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use yester::nfs::{serve, Exports, HandleKey, Service};
use yester::vfs::{Vfs, VfsOptions};

use crate::cli::context::Ctx;
use crate::cli::malloc::limit_malloc_arenas;
use crate::cli::repo;
use crate::cli::size::parse_size_usize;

#[derive(Subcommand)]
pub enum NfsCommand {
    /// Serve NFSv3 (with MOUNT on the same port) until interrupted
    #[command(
        after_help = "Clients mount with: mount -t nfs -o ro,vers=3,proto=tcp,port=2049,mountport=2049,nolock \\\n  backup-host:/daily.0/web1 /.yesterday\nWithout --exports only this host (127.0.0.0/8, ::1) may mount. See docs/NFS.md.\n\nExample:\n  yester nfs serve --listen 0.0.0.0:2049 --exports /etc/yester/exports"
    )]
    Serve(NfsServeArgs),
}

#[derive(Args)]
pub struct NfsServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:2049, or nfs.listen in the config]
    #[arg(long)]
    listen: Option<String>,
    /// Exports file (shape of /etc/exports) [default: nfs.exports in the config; else loopback only]
    #[arg(long)]
    exports: Option<PathBuf>,
    /// Secret that signs file handles; created on first use (keep it: handles outlive restarts)
    /// [default: /var/lib/yester/nfs-handle.key]
    #[arg(long)]
    handle_key: Option<PathBuf>,
    /// Memory for decompressed chunks, e.g. 512MiB [default: cache_size in the config, else
    /// 1/16 of the machine's RAM, at least 256MiB and at most 1GiB]
    #[arg(long, value_parser = parse_size_usize)]
    cache_size: Option<usize>,
}

pub fn nfs(ctx: &Ctx, c: NfsCommand) -> Result<u8> {
    match c {
        NfsCommand::Serve(a) => serve_nfs(ctx, a),
    }
}

/// The server's default chunk cache: 1/16 of RAM, within 256 MiB..1 GiB. A FUSE mount's reads
/// are kept by the kernel's page cache as well; the server's are not, so without a cache that
/// holds a client's working set every repeated READ decompresses and verifies its chunks
/// again, while a server of plain files answers it from the page cache.
fn server_cache() -> usize {
    const MIN: u64 = 256 << 20;
    const MAX: u64 = 1 << 30;
    let ram = nix::sys::sysinfo::sysinfo().map_or(0, |s| s.ram_total());
    usize::try_from((ram / 16).clamp(MIN, MAX)).unwrap_or(MIN as usize)
}

fn serve_nfs(ctx: &Ctx, a: NfsServeArgs) -> Result<u8> {
    limit_malloc_arenas();
    let repo = repo::open(ctx)?;
    let nfs_conf = ctx.config.as_ref().map(|c| &c.config.nfs);
    let exports_path = a
        .exports
        .clone()
        .or_else(|| nfs_conf.and_then(|n| n.exports.clone()));
    let listen = a
        .listen
        .clone()
        .or_else(|| nfs_conf.and_then(|n| n.listen.clone()))
        .unwrap_or_else(|| "127.0.0.1:2049".into());
    let handle_key = a
        .handle_key
        .clone()
        .or_else(|| nfs_conf.and_then(|n| n.handle_key.clone()))
        .unwrap_or_else(|| "/var/lib/yester/nfs-handle.key".into());
    let exports = match &exports_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Exports::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Exports::loopback_only(),
    };
    let key = HandleKey::load_or_create(&handle_key)
        .with_context(|| format!("handle key {}", handle_key.display()))?;
    let vfs = Vfs::new(
        repo,
        VfsOptions {
            cache_bytes: ctx.cache_size(a.cache_size, server_cache)?,
            ..VfsOptions::default()
        },
    )?;
    let service = Arc::new(Service::new(Arc::new(vfs), exports, key));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        eprintln!("yester: NFS server listening on {addr} (NFSv3 and MOUNT on this port)");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = serve(listener, service) => r.context("NFS server failed")?,
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if !ctx.quiet {
            eprintln!("yester: NFS server stopped");
        }
        Ok::<u8, anyhow::Error>(0)
    })
}
