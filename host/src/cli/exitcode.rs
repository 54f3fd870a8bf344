//! The exit codes of the client commands, the table scripts rely on, and how
//! HTTP answers and a job's final state map onto it.

/// Done; with `--wait` or `-f`: the job ended Complete.
pub const SUCCESS: u8 = 0;
/// With `--wait` or `-f`: the job ended Failed.
pub const JOB_FAILED: u8 = 1;
/// Bad usage or input: a bad flag, bad JSON, a bad config file, HTTP 400 (and other 4xx not below).
pub const USAGE: u8 = 2;
/// No such job or plugin: HTTP 404.
pub const NOT_FOUND: u8 = 3;
/// Not allowed in the job's current state, or a name taken: HTTP 409.
pub const CONFLICT: u8 = 4;
/// No token, or the token was refused: HTTP 401 or 403.
pub const AUTH: u8 = 5;
/// The server cannot be reached, answered 5xx, or answered something that is not the API.
pub const UNAVAILABLE: u8 = 6;
/// With `--wait` or `-f`: the job ended Cancelled.
pub const JOB_CANCELLED: u8 = 7;

/// The table as `--help` and the README show it.
pub const TABLE: &str = "\
Exit codes:
  0  success; with --wait or -f: the job ended Complete
  1  the job ended Failed (--wait, -f)
  2  usage or bad input: bad flags, JSON or config file; HTTP 400, 413, 415
  3  not found: HTTP 404
  4  conflict, e.g. the action is not allowed in the job's state: HTTP 409
  5  no API token, or the token was refused: HTTP 401, 403
  6  server unreachable, HTTP 5xx, or an answer that is not the API's
  7  the job ended Cancelled (--wait, -f)";

/// The exit code for an HTTP status the API answered with.
pub fn for_status(status: u16) -> u8 {
    match status {
        200..=299 => SUCCESS,
        401 | 403 => AUTH,
        404 => NOT_FOUND,
        409 => CONFLICT,
        400..=499 => USAGE,
        _ => UNAVAILABLE,
    }
}

/// The exit code for a job that has ended in `state`; None while it has not.
pub fn for_final_state(state: &str) -> Option<u8> {
    match state {
        "Complete" => Some(SUCCESS),
        "Failed" => Some(JOB_FAILED),
        "Cancelled" => Some(JOB_CANCELLED),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_table() {
        let cases = [
            (200, 0),
            (201, 0),
            (204, 0),
            (400, 2),
            (413, 2),
            (415, 2),
            (404, 3),
            (409, 4),
            (401, 5),
            (403, 5),
            (500, 6),
            (502, 6),
            (503, 6),
            (302, 6),
        ];
        for (status, code) in cases {
            assert_eq!(for_status(status), code, "HTTP {status}");
        }
    }

    #[test]
    fn only_final_states_end_a_wait() {
        assert_eq!(for_final_state("Complete"), Some(0));
        assert_eq!(for_final_state("Failed"), Some(1));
        assert_eq!(for_final_state("Cancelled"), Some(7));
        for state in ["New", "Preparing", "Ready", "Active", "Failing", "Paused"] {
            assert_eq!(for_final_state(state), None, "{state}");
        }
    }

    #[test]
    fn the_help_table_lists_every_code_once() {
        for code in 0..=7 {
            let lines = TABLE
                .lines()
                .filter(|l| l.trim_start().starts_with(&format!("{code} ")))
                .count();
            assert_eq!(lines, 1, "code {code} in\n{TABLE}");
        }
    }
}
