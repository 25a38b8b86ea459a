//! `node list`: the nodes sharing the store, with the revision each serves and its last
//! heartbeat (a lagging or silent node stands out).

use clap::{Args, Subcommand};

use super::{Session, name};
use crate::cli::CliError;
use crate::cli::connection::ClientOptions;
use crate::cli::output::{Column, text};

#[derive(Args)]
pub struct Nodes {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: NodeAction,
}

#[derive(Subcommand)]
enum NodeAction {
    /// Lists the nodes that sent a heartbeat in the last day.
    List,
}

const NODE_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "HOST", cell: |r| text(r, "/properties/name") },
    Column { header: "ADMIN", cell: |r| text(r, "/properties/adminAddress") },
    Column { header: "SERVED", cell: |r| text(r, "/properties/servedRevision") },
    Column { header: "BEHIND", cell: |r| text(r, "/properties/revisionsBehind") },
    Column { header: "LAST HEARTBEAT", cell: |r| text(r, "/properties/lastHeartbeat") },
    Column { header: "SILENT", cell: |r| text(r, "/properties/silent") },
];

impl Nodes {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        match self.action {
            NodeAction::List => session.list("/nodes", None, NODE_COLUMNS).await,
        }
    }
}
