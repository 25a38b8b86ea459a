//! What a command prints: an aligned table by default, or the API's JSON exactly as it came
//! (`-o json`, for `jq`), or the same as YAML.

use serde_json::Value;

use super::CliError;
use super::connection::Format;

/// A table column: its header and how a resource's JSON gives its cell.
pub(super) struct Column {
    pub header: &'static str,
    pub cell: fn(&Value) -> String,
}

/// Prints `body`, a resource or a `{"value": [...]}` list, in `format`.
pub(super) fn print(body: &Value, format: Format, columns: &[Column]) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(body),
        Format::Yaml => print_yaml(body),
        Format::Table => {
            let resources: Vec<&Value> = match body.get("value").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None => vec![body],
            };
            let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
            let rows = resources.iter().map(|r| columns.iter().map(|c| (c.cell)(r)).collect()).collect();
            print_table(&headers, rows);
            Ok(())
        }
    }
}

pub(super) fn print_json(body: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(body).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn print_yaml(body: &Value) -> Result<(), CliError> {
    let text = serde_yaml_ng::to_string(body).map_err(|e| CliError::Usage(e.to_string()))?;
    print!("{text}");
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart; the last one is not padded.
pub(super) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    print!("{}", table(headers, &rows));
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A string property at `pointer` (`/properties/subject`), or empty.
pub(super) fn text(resource: &Value, pointer: &str) -> String {
    match resource.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// An `expirationDate` with the days left, flagged (`!`) under 30 days and when expired.
pub(super) fn expiry(expiration: &str, now: i64) -> String {
    let Some(not_after) = certgate_pki::parse_utc(expiration) else { return expiration.to_owned() };
    let date = expiration.split('T').next().unwrap_or(expiration);
    let seconds = not_after - now;
    if seconds <= 0 {
        return format!("{date} (expired) !");
    }
    let days = seconds / 86_400;
    let flag = if days < 30 { " !" } else { "" };
    format!("{date} ({days} d){flag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["longer id".to_owned(), String::new(), "y".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "VALUE", "END"], &rows),
            "ID         VALUE       END\na          long value  x\nlonger id              y\n"
        );
    }

    #[test]
    fn expiry_shows_days_left_and_flags_the_last_thirty() {
        let now = certgate_pki::parse_utc("2027-01-01T00:00:00Z").expect("valid");
        assert_eq!(expiry("2027-03-01T00:00:00Z", now), "2027-03-01 (59 d)");
        assert_eq!(expiry("2027-01-30T12:00:00Z", now), "2027-01-30 (29 d) !");
        assert_eq!(expiry("2026-12-31T00:00:00Z", now), "2026-12-31 (expired) !");
        assert_eq!(expiry("soon", now), "soon");
    }
}
