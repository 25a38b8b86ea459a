//! Secrets the client reads: tokens from files, passwords and tokens from standard input. They
//! are never taken from the command line, where every user of the machine could read them.

use std::io::BufRead;
use std::path::Path;

use zeroize::Zeroizing;

use super::CliError;

/// A token file's first line.
pub(super) fn read_token(path: &Path) -> Result<Zeroizing<String>, CliError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read the token file {}: {e}", path.display())))?,
    );
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(CliError::Usage(format!("the token file {} is empty", path.display())));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// A secret's first line from standard input, without its line ending.
pub(super) fn secret_from_stdin(what: &str) -> Result<Zeroizing<String>, CliError> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read the {what} from standard input: {e}")))?;
    let trimmed = line.trim_end_matches(['\r', '\n']);
    Ok(Zeroizing::new(trimmed.to_owned()))
}
