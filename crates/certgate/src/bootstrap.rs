//! First-start duties: the data directory, the master key, the first admin token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use certgate_model::{EntityId, EntityKind, Role};
use certgate_store::{Duty, MasterKey, MasterKeyError, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("master key from {origin}: {source}")]
    MasterKey { origin: String, source: MasterKeyError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the system random generator failed")]
    Random,
    #[error("cannot encode the admin token: {0}")]
    Encode(String),
    #[error(
        "a node on a shared PostgreSQL store needs the cluster's master key (--master-key-file or \
         CERTGATE_MASTER_KEY): every node must have the same one, so none is generated"
    )]
    SharedStoreWithoutKey,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let path = path.to_owned();
    move |source| BootstrapError::Io { action, path, source }
}

pub fn create_data_dir(dir: &Path) -> Result<(), BootstrapError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("create the data directory", dir))
}

/// `--master-key-file`, else `CERTGATE_MASTER_KEY`, else `DATA_DIR/master.key`, generated with a
/// warning on first start — unless the store is `shared` by several nodes, which must all be
/// given the one key.
pub fn master_key(
    file: Option<&Path>,
    inline: Option<&str>,
    data_dir: &Path,
    shared: bool,
) -> Result<MasterKey, BootstrapError> {
    let from_file = |path: &Path| -> Result<MasterKey, BootstrapError> {
        let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io("read the master key file", path))?);
        MasterKey::parse(&text)
            .map_err(|source| BootstrapError::MasterKey { origin: path.display().to_string(), source })
    };
    if let Some(path) = file {
        return from_file(path);
    }
    if let Some(text) = inline {
        return MasterKey::parse(text)
            .map_err(|source| BootstrapError::MasterKey { origin: "CERTGATE_MASTER_KEY".into(), source });
    }
    let default = data_dir.join("master.key");
    if default.exists() {
        return from_file(&default);
    }
    if shared {
        return Err(BootstrapError::SharedStoreWithoutKey);
    }
    let (key, text) =
        MasterKey::generate().map_err(|source| BootstrapError::MasterKey { origin: "generator".into(), source })?;
    write_private(&default, text.as_bytes())?;
    tracing::warn!(
        path = %default.display(),
        "no master key given: generated one next to the data. Keep a copy elsewhere and pass it with \
         --master-key-file or CERTGATE_MASTER_KEY in production; without it the stored keys are lost"
    );
    Ok(key)
}

/// With no token anywhere (none stored, none in the environment), creates a contributor token
/// `admin`, writes its secret to `DATA_DIR/admin-token` and logs where it is. Nodes starting
/// together on one shared store take turns ([`Duty::Bootstrap`]), so only the first creates it.
pub async fn first_admin_token(
    store: &dyn Store,
    data_dir: &Path,
    environment_token: bool,
) -> Result<(), BootstrapError> {
    if environment_token || !store.list(EntityKind::Token).await?.is_empty() {
        return Ok(());
    }
    let mut waited = false;
    let _turn = loop {
        match store.try_lead(Duty::Bootstrap).await? {
            Some(lease) => break lease,
            None => {
                if !std::mem::replace(&mut waited, true) {
                    tracing::info!("another node is making the first admin token; waiting for it");
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    // Checked again in turn: the node before may have made it.
    if !store.list(EntityKind::Token).await?.is_empty() {
        return Ok(());
    }
    let issued = certgate_admin::issue_token(Role::Contributor).map_err(|_| BootstrapError::Random)?;
    let path = data_dir.join("admin-token");
    // The file first: a stored token whose secret nobody has would lock the operator out.
    write_private(&path, zeroize::Zeroizing::new(format!("{}\n", issued.secret.as_str())).as_bytes())?;
    #[allow(clippy::expect_used)] // a constant, valid id
    let id = EntityId::parse("admin").expect("'admin' is a valid id");
    let body = serde_json::to_string(&issued.token).map_err(|e| BootstrapError::Encode(e.to_string()))?;
    store.put(EntityKind::Token, &id, body, None, None).await?;
    tracing::info!(path = %path.display(), "created the first admin token (contributor); its secret is in this file");
    Ok(())
}

/// Writes a file only its owner can read, replacing any previous one.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), BootstrapError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(io("write", path))
}
