//! Paging: `limit` (capped by `api.max_page`) and an opaque `cursor`
//! naming the last item seen (its time and id); a forged or malformed
//! cursor is a 400, never a 500.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ApiError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page (1 to `api.max_page`, default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of items and the cursor of the next one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The limit to ask the database for (one more than the page, to know
/// whether there is a next page).
pub fn limit(requested: Option<u32>, max: u32) -> Result<i64, ApiError> {
    match requested {
        None => Ok(i64::from(50.min(max)) + 1),
        Some(n) if n >= 1 && n <= max => Ok(i64::from(n) + 1),
        Some(n) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit {n} is out of range: 1 to {max}"),
        )),
    }
}

/// Reads a cursor: `{microseconds since the epoch}.{uuid}`.
pub fn cursor(c: Option<&str>) -> Result<Option<(DateTime<Utc>, Uuid)>, ApiError> {
    let Some(c) = c else { return Ok(None) };
    let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave out");
    let (micros, id) = c.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id: Uuid = id.parse().map_err(|_| bad())?;
    Ok(Some((at, id)))
}

fn encode(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// Cuts the extra row off and makes the next cursor from the last item.
pub fn page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> (DateTime<Utc>, Uuid)) -> Page<T> {
    let more = rows.len() as i64 >= limit;
    if more {
        rows.truncate((limit - 1) as usize);
    }
    let next_cursor = if more {
        rows.last().map(|r| {
            let (at, id) = key(r);
            encode(at, id)
        })
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(cursor(Some(&encode(at, id))).unwrap(), Some((at, id)));
        for bad in [
            "",
            "x",
            "1.2",
            "abc.0190",
            "99999999999999999999.00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(
                cursor(Some(bad)).unwrap_err().code,
                "invalid_cursor",
                "{bad}"
            );
        }
        assert_eq!(limit(Some(0), 100).unwrap_err().code, "invalid_limit");
        assert_eq!(limit(Some(101), 100).unwrap_err().code, "invalid_limit");
        assert_eq!(limit(None, 100).unwrap(), 51);
    }
}
