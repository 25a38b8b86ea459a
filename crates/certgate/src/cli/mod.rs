//! The client subcommands: everything but `server`. Each calls the management API of a node,
//! the way the Az cmdlets call APIM's (`certgate backend new … --skip-certificate-chain-validation`
//! is `New-AzApiManagementBackend -SkipCertificateChainValidation $true`).
//!
//! - `connection.rs`: where the node is and which token to send (options, environment, named
//!   contexts from `contexts.rs`, the local data directory).
//! - `client.rs`: the HTTP calls and the server's error envelope.
//! - `output.rs`: tables, JSON exactly as the API sent it, YAML.
//! - `resources/`: the subcommands, one file per collection.
//! - `declarative.rs`: `export` and `apply` (the whole configuration as one YAML file, a plan).
//! - `secrets.rs`: tokens and passwords from files and standard input, never from argv.
//!
//! Exit codes: 0 done, 1 the server refused, 2 usage (clap's own code), 3 the node is unreachable.

mod client;
mod connection;
mod contexts;
mod declarative;
mod output;
mod resources;
mod secrets;

use std::process::ExitCode;

use clap::Subcommand;

/// The client subcommands, flattened into the binary's command line.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Named management endpoints with their tokens, like New-AzApiManagementContext.
    #[command(subcommand)]
    Context(contexts::ContextCommand),
    /// Client certificates the gateway presents to backends (uploaded PFX or vault reference).
    Certificate(resources::Certificates),
    /// CA certificates that extend the trust used to validate backends.
    CaCertificate(resources::CaCertificates),
    /// Backend services with their TLS switches and client certificates.
    Backend(resources::Backends),
    /// APIs: public path prefixes mapped to backends.
    Api(resources::Apis),
    /// Operations of an API (method + URL template).
    Operation(resources::Operations),
    /// Policy documents at global, API or operation scope.
    Policy(resources::Policies),
    /// Management API tokens.
    Token(resources::Tokens),
    /// The nodes sharing the store (one, on the embedded store).
    Node(resources::Nodes),
    /// Writes the whole configuration as YAML (uploaded certificates by thumbprint, with a
    /// placeholder for their PFX file: no key leaves the node).
    Export(declarative::Export),
    /// Brings the node to a configuration file: prints the plan, then applies it.
    Apply(declarative::Apply),
    /// Shell completion script for bash, zsh or fish, on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Why a client command failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error status.
    #[error("{0}")]
    Refused(client::Refusal),
    #[error("cannot reach the node at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The command cannot be carried out as given (a missing file, a bad option combination).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable { .. } => 3,
        }
    }
}

/// Runs a client command; `command` builds the completion script from the whole command line.
pub fn main(command: ClientCommand, cli: impl FnOnce() -> clap::Command) -> ExitCode {
    if let ClientCommand::Completions { shell } = command {
        clap_complete::generate(shell, &mut cli(), "certgate", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Context(command) => contexts::run(command),
        ClientCommand::Certificate(command) => command.run().await,
        ClientCommand::CaCertificate(command) => command.run().await,
        ClientCommand::Backend(command) => command.run().await,
        ClientCommand::Api(command) => command.run().await,
        ClientCommand::Operation(command) => command.run().await,
        ClientCommand::Policy(command) => command.run().await,
        ClientCommand::Token(command) => command.run().await,
        ClientCommand::Node(command) => command.run().await,
        ClientCommand::Export(command) => command.run().await,
        ClientCommand::Apply(command) => command.run().await,
        ClientCommand::Completions { .. } => Ok(()),
    }
}
