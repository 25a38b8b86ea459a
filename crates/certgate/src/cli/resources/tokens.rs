//! `token`: management API tokens; a new one's secret is printed once.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::{Common, Session, name};
use crate::cli::CliError;
use crate::cli::connection::ClientOptions;
use crate::cli::output::{Column, text};

#[derive(Args)]
pub struct Tokens {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Creates a token; its secret is printed this once.
    New {
        #[arg(long)]
        id: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    #[command(flatten)]
    Common(Common),
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Reader,
    Contributor,
}

const TOKEN_COLUMNS: &[Column] =
    &[Column { header: "ID", cell: name }, Column { header: "ROLE", cell: |r| text(r, "/properties/role") }];

const NEW_TOKEN_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "ROLE", cell: |r| text(r, "/properties/role") },
    Column { header: "SECRET (shown once)", cell: |r| text(r, "/properties/secret") },
];

impl Tokens {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        match self.action {
            TokenAction::New { id, role } => {
                let role = match role {
                    Role::Reader => "reader",
                    Role::Contributor => "contributor",
                };
                session.put(&format!("/tokens/{id}"), json!({ "role": role }), NEW_TOKEN_COLUMNS).await
            }
            TokenAction::Common(common) => common.run(&session, "/tokens", TOKEN_COLUMNS).await,
        }
    }
}
