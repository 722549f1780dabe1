//! Requests through ureq, a client written elsewhere, and the parsed response
//! that the raw clients give too.

use std::io::Read;

use crate::TIMEOUT;

/// A ureq agent builder that gives up after [`TIMEOUT`] and follows no redirect;
/// for agents that need one more setting.
pub fn agent_builder() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new().timeout(TIMEOUT).redirects(0)
}

/// A ureq agent that gives up after [`TIMEOUT`] and follows no redirect.
pub fn agent() -> ureq::Agent {
    agent_builder().build()
}

/// Sends `request`, with `body` if any. Every status is an answer (ureq reports
/// 4xx and 5xx as errors); `Err` (the error's text) when no whole response came:
/// the request failed or its body could not be read to the end.
pub fn send(request: ureq::Request, body: Option<&[u8]>) -> Result<Reply, String> {
    let sent = match body {
        Some(b) => request.send_bytes(b),
        None => request.call(),
    };
    let response = match sent {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    Reply::read(response).map_err(|e| format!("reading the body: {e}"))
}

/// `method url` through `agent`, with `body` if any: [`send`].
pub fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&[u8]>) -> Result<Reply, String> {
    send(agent.request(method, url), body)
}

/// GET `url` through `agent`: the response whatever its status. Panics if none came.
#[track_caller]
pub fn get(agent: &ureq::Agent, url: &str) -> Reply {
    call(agent, "GET", url, None).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The values of header `name` (any case) in `headers`, in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One response, from ureq or read off a raw connection.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// In order, names as received (ureq lowercases them).
    pub headers: Vec<(String, String)>,
    /// The body (none for HEAD).
    pub body: Vec<u8>,
    /// The whole response as received (raw connections only).
    pub raw: Vec<u8>,
}

impl Reply {
    /// Status, headers and the body read to its end.
    fn read(response: ureq::Response) -> std::io::Result<Reply> {
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .flat_map(|n| {
                response
                    .all(&n)
                    .into_iter()
                    .map(|v| (n.clone(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut body = Vec::new();
        response.into_reader().read_to_end(&mut body)?;
        Ok(Reply {
            status,
            headers,
            body,
            raw: Vec::new(),
        })
    }

    /// The only value of header `name`; panics if it appears more than once.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} appears {} times", all.len());
        all.first().copied()
    }

    /// Every value of header `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
    }

    /// Asserts `name: value` is present exactly once.
    #[track_caller]
    pub fn expect(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "header {name} in {:?}",
            self.headers
        );
        self
    }

    /// Asserts header `name` is absent.
    #[track_caller]
    pub fn expect_absent(&self, name: &str) -> &Self {
        assert_eq!(self.header(name), None, "header {name} in {:?}", self.headers);
        self
    }

    /// Headers except `Date`, names lowercased, for comparing two answers.
    pub fn comparable_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
