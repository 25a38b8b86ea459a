//! The subcommands per collection. `new` PUTs a whole resource; `set` reads the resource and
//! PATCHes only what it was given, with `If-Match` of what it read, so a concurrent change is
//! refused (412) instead of overwritten. One file per collection; `Session` is what they share.

mod apis;
mod backends;
mod certificates;
mod nodes;
mod tokens;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::CliError;
use super::client::AdminClient;
use super::connection::{ClientOptions, Format};
use super::output::{self, Column, text};

/// A resource's id: its `name`.
fn name(resource: &Value) -> String {
    text(resource, "/name")
}

/// What every collection command needs: the connection and where output goes.
struct Session {
    client: AdminClient,
    format: Format,
}

impl Session {
    fn open(options: &ClientOptions) -> Result<Self, CliError> {
        Ok(Self { client: options.connection.connect()?, format: options.output })
    }

    async fn list(&self, path: &str, filter: Option<&str>, columns: &[Column]) -> Result<(), CliError> {
        let list = self.client.list(path, filter).await?;
        output::print(&list, self.format, columns)
    }

    async fn show(&self, path: &str, columns: &[Column]) -> Result<(), CliError> {
        let reply = self.client.get(path).await?;
        output::print(&reply.body, self.format, columns)
    }

    async fn put(&self, path: &str, properties: Value, columns: &[Column]) -> Result<(), CliError> {
        let reply = self.client.send(Method::PUT, path, Some(&json!({ "properties": properties })), None).await?;
        output::print(&reply.body, self.format, columns)
    }

    /// Reads the resource, lets `change` compute the properties to PATCH from it, and PATCHes
    /// them under `If-Match`.
    async fn set(
        &self,
        path: &str,
        columns: &[Column],
        change: impl FnOnce(&Value) -> Map<String, Value>,
    ) -> Result<(), CliError> {
        let current = self.client.get(path).await?;
        let properties = change(&current.body);
        let body = json!({ "properties": properties });
        let reply = self.client.send(Method::PATCH, path, Some(&body), current.etag.as_deref()).await?;
        output::print(&reply.body, self.format, columns)
    }

    async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.client.send(Method::DELETE, path, None, None).await?;
        if self.format == Format::Table {
            println!("deleted {path}");
        }
        Ok(())
    }
}

pub use apis::{Apis, Operations, Policies};
pub use backends::Backends;
pub use certificates::{CaCertificates, Certificates};
pub use nodes::Nodes;
pub use tokens::Tokens;

/// The subcommands every top-level collection has, flattened into each one's own.
#[derive(clap::Subcommand)]
enum Common {
    /// Lists them; `--filter` takes APIM's `$filter` (e.g. "contains(name, 'orders')").
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    /// Shows one.
    Show { id: String },
    /// Deletes one; refused, naming them, while something references it.
    Delete { id: String },
}

impl Common {
    async fn run(self, session: &Session, collection: &str, columns: &[Column]) -> Result<(), CliError> {
        match self {
            Common::List { filter } => session.list(collection, filter.as_deref(), columns).await,
            Common::Show { id } => session.show(&format!("{collection}/{id}"), columns).await,
            Common::Delete { id } => session.delete(&format!("{collection}/{id}")).await,
        }
    }
}
