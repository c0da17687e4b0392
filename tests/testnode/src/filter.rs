//! Meilisearch's filter language: parser (same grammar, same error messages and error
//! positions as `filter-parser`) and evaluator (same semantics as milli's facet filters).
//!
//! Semantics follow milli:
//! * `=` matches a string facet case-insensitively (values are trimmed and lowercased) and
//!   a number facet when the right-hand side parses as a number; booleans are string facets
//!   `"true"` / `"false"`.
//! * `>`, `>=`, `<`, `<=`, `TO` compare number facets only; the right-hand side must be a number.
//! * `!=`, `NOT`, `NOT IN` are complements over *all* documents (documents lacking the field match).
//! * Arrays are flattened: a document matches if any of its values does.
//! * `EXISTS` is true when the field is present (even `null`); `IS NULL` when its value is
//!   `null`; `IS EMPTY` when it is `""`, `[]` or `{}`.

use std::fmt;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use serde_json::{Map, Value};

/// Earth radius used by milli's haversine distance.
const EARTH_RADIUS_M: f64 = 6_371_000.0;
const MAX_FILTER_DEPTH: usize = 200;

/// A token of the input: its (unescaped) value and its place in the input (in bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub value: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Token),
    Ne(Token),
    Gt(Token),
    Ge(Token),
    Lt(Token),
    Le(Token),
    Between { from: Token, to: Token },
    Exists,
    Null,
    Empty,
    Contains(Token),
    StartsWith(Token),
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Not(Box<Filter>),
    Cond { fid: Token, op: Op },
    In { fid: Token, els: Vec<Token> },
    Or(Vec<Filter>),
    And(Vec<Filter>),
    GeoRadius { lat: Token, lng: Token, radius: Token },
    GeoBoundingBox { top_right: [Token; 2], bottom_left: [Token; 2] },
}

/// A filter error, displayed exactly as Meilisearch displays it:
/// `{diagnostic}\n{start}:{end} {input}` (columns are 1-based, in characters).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    pub message: String,
    pub start_col: usize,
    pub end_col: usize,
    pub input: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}:{} {}", self.message, self.start_col, self.end_col, self.input)
    }
}

impl std::error::Error for FilterError {}

impl FilterError {
    fn at(input: &str, start: usize, end: usize, message: String) -> Self {
        let start_col = input[..start].chars().count() + 1;
        let size = input[start..end].chars().count();
        FilterError { message, start_col, end_col: start_col + size, input: input.to_string() }
    }
}

/// Error of the filter *parameter* (not of one expression): wrong JSON type.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterParamError {
    Syntax(FilterError),
    /// `Invalid syntax for the filter parameter: ...`
    InvalidExpression(String),
}

impl fmt::Display for FilterParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterParamError::Syntax(e) => e.fmt(f),
            FilterParamError::InvalidExpression(m) => f.write_str(m),
        }
    }
}

/// One parsed filter together with the text it was parsed from (for error positions).
#[derive(Debug, Clone)]
pub struct ParsedFilter {
    pub source: String,
    pub filter: Filter,
}

/// A filter as given in a request: a string, or an array of strings and arrays of strings
/// (outer AND, inner OR). Each string keeps its own source for error positions.
#[derive(Debug, Clone)]
pub enum FilterExpr {
    One(ParsedFilter),
    And(Vec<FilterExpr>),
    Or(Vec<FilterExpr>),
}

fn invalid_expression(expected: &[&str], found: &Value) -> FilterParamError {
    FilterParamError::InvalidExpression(format!(
        "Invalid syntax for the filter parameter: `expected {}, found: {}`.",
        expected.join(", "),
        found
    ))
}

/// Parses the `filter` parameter of a request (string or array form). `Ok(None)` when the
/// filter is empty or null.
pub fn parse_filter_value(value: &Value) -> Result<Option<FilterExpr>, FilterParamError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(parse(s).map_err(FilterParamError::Syntax)?.map(FilterExpr::One)),
        Value::Array(arr) => {
            let mut ands = Vec::new();
            for v in arr {
                match v {
                    Value::String(s) => {
                        if let Some(f) = parse(s).map_err(FilterParamError::Syntax)? {
                            ands.push(FilterExpr::One(f));
                        }
                    }
                    Value::Array(inner) => {
                        let mut ors = Vec::new();
                        for v in inner {
                            match v {
                                Value::String(s) => {
                                    if let Some(f) = parse(s).map_err(FilterParamError::Syntax)? {
                                        ors.push(FilterExpr::One(f));
                                    }
                                }
                                v => return Err(invalid_expression(&["String"], v)),
                            }
                        }
                        match ors.len() {
                            0 => {}
                            1 => ands.push(ors.pop().unwrap()),
                            _ => ands.push(FilterExpr::Or(ors)),
                        }
                    }
                    v => return Err(invalid_expression(&["String", "[String]"], v)),
                }
            }
            Ok(match ands.len() {
                0 => None,
                1 => ands.pop(),
                _ => Some(FilterExpr::And(ands)),
            })
        }
        v => Err(invalid_expression(&["String", "Array"], v)),
    }
}

/// Parses one filter string. `Ok(None)` for a blank string.
pub fn parse(input: &str) -> Result<Option<ParsedFilter>, FilterError> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    let p = Parser { s: input };
    let res = p.expression(0, 0).and_then(|(pos, f)| {
        if pos == input.len() {
            Ok((pos, f))
        } else {
            Err(PErr::Error(E { start: pos, end: input.len(), kind: Kind::ExpectedEof }))
        }
    });
    match res {
        Ok((_, filter)) => Ok(Some(ParsedFilter { source: input.to_string(), filter })),
        Err(PErr::Error(e)) | Err(PErr::Failure(e)) => Err(e.into_filter_error(input)),
    }
}

// ---------------------------------------------------------------------------------------
// parser: a transcription of filter-parser's nom combinators (alternatives tried in the same
// order, recoverable errors vs. cut failures), so that error messages and spans agree.

#[derive(Debug, Clone)]
enum Kind {
    ReservedGeo(&'static str),
    GeoRadius,
    GeoBoundingBox,
    MisusedGeoRadius,
    MisusedGeoBoundingBox,
    InvalidPrimary,
    ExpectedEof,
    ExpectedValue { reserved: bool },
    MalformedValue,
    InOpeningBracket,
    InClosingBracket,
    InExpectedValue { reserved: bool },
    MissingClosingDelimiter(char),
    Internal,
    DepthLimitReached,
}

#[derive(Debug, Clone)]
struct E {
    start: usize,
    end: usize,
    kind: Kind,
}

impl E {
    fn into_filter_error(self, input: &str) -> FilterError {
        let frag = &input[self.start..self.end];
        let esc: String = frag.escape_debug().collect();
        let message = match &self.kind {
            Kind::ExpectedValue { .. } if frag.trim().is_empty() => {
                "Was expecting a value but instead got nothing.".to_string()
            }
            Kind::ExpectedValue { reserved: true } => format!("Was expecting a value but instead got `{esc}`, which is a reserved keyword. To use `{esc}` as a field name or a value, surround it by quotes."),
            Kind::ExpectedValue { reserved: false } => format!("Was expecting a value but instead got `{esc}`."),
            Kind::MalformedValue => format!("Malformed value: `{esc}`."),
            Kind::MissingClosingDelimiter(c) => format!("Expression `{esc}` is missing the following closing delimiter: `{c}`."),
            Kind::InvalidPrimary => {
                let text = if frag.trim().is_empty() { "but instead got nothing.".to_string() } else { format!("at `{esc}`.") };
                format!("Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, or `_geoBoundingBox` {text}")
            }
            Kind::ExpectedEof => format!("Found unexpected characters at the end of the filter: `{esc}`. You probably forgot an `OR` or an `AND` rule."),
            Kind::GeoRadius => "The `_geoRadius` filter expects three arguments: `_geoRadius(latitude, longitude, radius)`.".to_string(),
            Kind::GeoBoundingBox => "The `_geoBoundingBox` filter expects two pairs of arguments: `_geoBoundingBox([latitude, longitude], [latitude, longitude])`.".to_string(),
            Kind::ReservedGeo(name) => format!("`{name}` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates."),
            Kind::MisusedGeoRadius => "The `_geoRadius` filter is an operation and can't be used as a value.".to_string(),
            Kind::MisusedGeoBoundingBox => "The `_geoBoundingBox` filter is an operation and can't be used as a value.".to_string(),
            Kind::InOpeningBracket => "Expected `[` after `IN` keyword.".to_string(),
            Kind::InClosingBracket => "Expected matching `]` after the list of field names given to `IN[`".to_string(),
            Kind::InExpectedValue { reserved: true } => format!("Expected only comma-separated field names inside `IN[..]` but instead found `{esc}`, which is a keyword. To use `{esc}` as a field name or a value, surround it by quotes."),
            Kind::InExpectedValue { reserved: false } => format!("Expected only comma-separated field names inside `IN[..]` but instead found `{esc}`."),
            Kind::Internal => "Encountered an internal error while parsing your filter. Please fill an issue".to_string(),
            Kind::DepthLimitReached => "The filter exceeded the maximum depth limit. Try rewriting the filter so that it contains fewer nested conditions.".to_string(),
        };
        FilterError::at(input, self.start, self.end, message)
    }
}

#[derive(Debug, Clone)]
enum PErr {
    Error(E),
    Failure(E),
}

impl PErr {
    fn is_failure(&self) -> bool {
        matches!(self, PErr::Failure(_))
    }
    fn cut(self) -> PErr {
        match self {
            PErr::Error(e) => PErr::Failure(e),
            f => f,
        }
    }
}

type R<T> = Result<(usize, T), PErr>;

fn is_value_component(c: char) -> bool {
    c.is_alphanumeric() || ['_', '-', '.'].contains(&c)
}

fn is_syntax_component(c: char) -> bool {
    c.is_whitespace() || ['(', ')', '=', '<', '>', '!'].contains(&c)
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "AND" | "OR" | "IN" | "NOT" | "TO" | "EXISTS" | "IS" | "NULL" | "EMPTY" | "CONTAINS"
            | "STARTS" | "WITH" | "_geoRadius" | "_geoBoundingBox"
    )
}

struct Parser<'a> {
    s: &'a str,
}

impl<'a> Parser<'a> {
    fn end(&self) -> usize {
        self.s.len()
    }
    fn rest(&self, pos: usize) -> &'a str {
        &self.s[pos..]
    }
    fn err(&self, pos: usize, kind: Kind) -> PErr {
        PErr::Error(E { start: pos, end: self.end(), kind })
    }
    fn fail(&self, pos: usize, kind: Kind) -> PErr {
        PErr::Failure(E { start: pos, end: self.end(), kind })
    }
    fn ws0(&self, pos: usize) -> usize {
        let r = self.rest(pos);
        pos + (r.len() - r.trim_start().len())
    }
    fn ws1(&self, pos: usize) -> Option<usize> {
        let p = self.ws0(pos);
        (p > pos).then_some(p)
    }
    fn take_while(&self, pos: usize, f: impl Fn(char) -> bool) -> usize {
        let r = self.rest(pos);
        pos + r.find(|c| !f(c)).unwrap_or(r.len())
    }
    fn word(&self, pos: usize) -> Option<(usize, &'a str)> {
        let end = self.take_while(pos, is_value_component);
        (end > pos).then(|| (end, &self.s[pos..end]))
    }
    fn word_exact(&self, pos: usize, tag: &str) -> Option<usize> {
        match self.word(pos) {
            Some((end, w)) if w == tag => Some(end),
            _ => None,
        }
    }
    fn tag(&self, pos: usize, tag: &str) -> Option<usize> {
        self.rest(pos).starts_with(tag).then(|| pos + tag.len())
    }

    /// `recognize_float`: [+-]? digits? (. digits?)? ([eE][+-]?digits)?
    fn float(&self, pos: usize) -> Option<(usize, Token)> {
        let b = self.s.as_bytes();
        let mut i = pos;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let ds = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let mut digits = i > ds;
        if i < b.len() && b[i] == b'.' {
            let fs = i + 1;
            let mut j = fs;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if digits || j > fs {
                digits = true;
                i = j;
            }
        }
        if !digits {
            return None;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            let es = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > es {
                i = j;
            }
        }
        Some((i, Token { value: self.s[pos..i].to_string(), start: pos, end: i }))
    }

    /// `separated_list1(tag(","), ws(recognize_float))`
    fn float_list(&self, mut pos: usize) -> Option<(usize, Vec<Token>)> {
        let mut out = Vec::new();
        loop {
            let p = self.ws0(pos);
            let (p, t) = self.float(p)?;
            out.push(t);
            pos = self.ws0(p);
            match self.tag(pos, ",") {
                Some(p) => pos = p,
                None => return Some((pos, out)),
            }
        }
    }

    fn geo_radius(&self, input: usize) -> R<Filter> {
        let p = self.ws0(input);
        let Some(p) = self.word_exact(p, "_geoRadius") else {
            return Err(self.err(input, Kind::GeoRadius));
        };
        let parsed = self
            .tag(p, "(")
            .and_then(|p| self.float_list(p))
            .and_then(|(p, args)| self.tag(p, ")").map(|p| (p, args)));
        let Some((p, args)) = parsed else {
            return Err(self.fail(input, Kind::GeoRadius));
        };
        if args.len() != 3 {
            return Err(self.fail(p, Kind::GeoRadius));
        }
        let mut it = args.into_iter();
        let (lat, lng, radius) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        Ok((p, Filter::GeoRadius { lat, lng, radius }))
    }

    fn geo_bounding_box(&self, input: usize) -> R<Filter> {
        let p = self.ws0(input);
        let Some(p) = self.word_exact(p, "_geoBoundingBox") else {
            return Err(self.err(input, Kind::GeoBoundingBox));
        };
        let parse_args = || -> Option<(usize, Vec<Vec<Token>>)> {
            let mut pos = self.tag(p, "(")?;
            let mut out = Vec::new();
            loop {
                let q = self.ws0(pos);
                let q = self.tag(q, "[")?;
                let (q, l) = self.float_list(q)?;
                let q = self.tag(q, "]")?;
                out.push(l);
                pos = self.ws0(q);
                match self.tag(pos, ",") {
                    Some(q) => pos = q,
                    None => break,
                }
            }
            let pos = self.tag(pos, ")")?;
            Some((pos, out))
        };
        let Some((p, args)) = parse_args() else {
            return Err(self.fail(input, Kind::GeoBoundingBox));
        };
        if args.len() != 2 || args[0].len() != 2 || args[1].len() != 2 {
            return Err(self.fail(p, Kind::GeoBoundingBox));
        }
        let mut a = args.into_iter();
        let mut tr = a.next().unwrap().into_iter();
        let mut bl = a.next().unwrap().into_iter();
        Ok((
            p,
            Filter::GeoBoundingBox {
                top_right: [tr.next().unwrap(), tr.next().unwrap()],
                bottom_left: [bl.next().unwrap(), bl.next().unwrap()],
            },
        ))
    }

    /// `_geoPoint(...)`, `_geoDistance(...)`, `_geo(...)`: always an error when recognised.
    fn reserved_geo(&self, input: usize, name: &'static str, exact_word: bool) -> Result<(), PErr> {
        let p = self.ws0(input);
        let hit = if exact_word { self.word_exact(p, name) } else { self.tag(p, name) };
        match hit {
            None => Err(self.err(input, Kind::ReservedGeo(name))),
            Some(_) => Err(self.fail(input, Kind::ReservedGeo(name))),
        }
    }

    /// Content of a quoted value (after the opening quote) up to the closing one.
    fn quoted_by(&self, quote: char, pos: usize) -> (usize, Token) {
        let r = self.rest(pos);
        let mut escaped = false;
        let mut it = r.char_indices();
        let mut close = None;
        while let Some((i, c)) = it.next() {
            if c == quote {
                close = Some(i);
                break;
            } else if c == '\\' {
                if let Some((_, c2)) = it.next() {
                    escaped |= c2 == quote;
                }
            }
        }
        let end = pos + close.unwrap_or(r.len());
        let raw = &self.s[pos..end];
        let value = if escaped { raw.replace(&format!("\\{quote}"), &quote.to_string()) } else { raw.to_string() };
        (end, Token { value, start: pos, end })
    }

    /// value = WS* ( word | singleQuoted | doubleQuoted) WS*
    fn value(&self, input: usize) -> R<Token> {
        let input = self.take_while(input, char::is_whitespace);
        for (name, exact) in [("_geoPoint", false), ("_geoDistance", false), ("_geo", true)] {
            if let Err(e) = self.reserved_geo(input, name, exact) {
                if e.is_failure() {
                    return Err(e);
                }
            }
        }
        match self.geo_radius(input) {
            Ok(_) => return Err(self.fail(input, Kind::MisusedGeoRadius)),
            Err(e) if e.is_failure() => return Err(self.fail(input, Kind::MisusedGeoRadius)),
            _ => {}
        }
        match self.geo_bounding_box(input) {
            Ok(_) => return Err(self.fail(input, Kind::MisusedGeoBoundingBox)),
            Err(e) if e.is_failure() => return Err(self.fail(input, Kind::MisusedGeoBoundingBox)),
            _ => {}
        }
        let error_word_end = self.take_while(input, |c| !is_syntax_component(c));
        let expected = |reserved: bool| {
            PErr::Error(E { start: input, end: error_word_end, kind: Kind::ExpectedValue { reserved } })
        };
        let (pos, token) = if let Some(q) = ['\'', '"'].into_iter().find(|q| self.rest(input).starts_with(*q)) {
            let (p, tok) = self.quoted_by(q, input + 1);
            match self.tag(p, &q.to_string()) {
                Some(p) => (p, tok),
                None => return Err(self.fail(input, Kind::MissingClosingDelimiter(q))),
            }
        } else {
            match self.word(input) {
                None => return Err(expected(false)),
                Some((p, w)) => {
                    if is_keyword(w) {
                        return Err(expected(true));
                    }
                    (p, Token { value: w.to_string(), start: input, end: p })
                }
            }
        };
        let pos = self.ws0(pos);
        match unescape(&token.value) {
            Some(v) => Ok((pos, Token { value: v, ..token })),
            None => Err(PErr::Error(E { start: token.start, end: token.end, kind: Kind::MalformedValue })),
        }
    }

    fn value_list(&self, pos: usize) -> R<Vec<Token>> {
        let (mut pos, first) = match self.value(pos) {
            Ok(v) => v,
            Err(PErr::Error(_)) => return Ok((pos, vec![])),
            Err(f) => return Err(f),
        };
        let mut values = vec![first];
        loop {
            let p = self.ws0(pos);
            let Some(p) = self.tag(p, ",") else { break };
            let p = self.ws0(p);
            match self.value(p) {
                Ok((p, v)) => {
                    values.push(v);
                    pos = p;
                }
                Err(PErr::Error(_)) => break,
                Err(f) => return Err(f),
            }
        }
        // optional trailing comma
        let p = self.ws0(pos);
        if let Some(p) = self.tag(p, ",") {
            pos = self.ws0(p);
        }
        Ok((pos, values))
    }

    fn in_body(&self, pos: usize) -> R<Vec<Token>> {
        let p = self.ws0(pos);
        let p = self.word_exact(p, "IN").ok_or_else(|| self.err(pos, Kind::Internal))?;
        let input = self.ws0(p);
        let p = self.tag(input, "[").ok_or_else(|| self.fail(input, Kind::InOpeningBracket))?;
        let (input, content) = self.value_list(p).map_err(PErr::cut)?;
        let close = self.tag(self.ws0(input), "]").map(|p| self.ws0(p));
        match close {
            Some(p) => Ok((p, content)),
            None => {
                if input == self.end() {
                    Err(self.fail(input, Kind::InClosingBracket))
                } else {
                    let reserved = matches!(self.value(input), Err(PErr::Error(E { kind: Kind::ExpectedValue { reserved: true }, .. })));
                    Err(self.fail(input, Kind::InExpectedValue { reserved }))
                }
            }
        }
    }

    fn in_(&self, input: usize) -> R<Filter> {
        let (p, fid) = self.value(input)?;
        let (p, els) = self.in_body(p)?;
        Ok((p, Filter::In { fid, els }))
    }

    fn not_in(&self, input: usize) -> R<Filter> {
        let (p, fid) = self.value(input)?;
        let p = self.word_exact(p, "NOT").ok_or_else(|| self.err(p, Kind::Internal))?;
        let (p, els) = self.in_body(p)?;
        Ok((p, Filter::Not(Box::new(Filter::In { fid, els }))))
    }

    fn condition(&self, input: usize) -> R<Filter> {
        let (p, fid) = self.value(input)?;
        let ops = ["<=", ">=", "!=", "<", ">", "="];
        let Some(op) = ops.into_iter().find(|o| self.rest(p).starts_with(*o)) else {
            return Err(self.err(p, Kind::Internal));
        };
        let (p, v) = self.value(p + op.len()).map_err(PErr::cut)?;
        let op = match op {
            "<=" => Op::Le(v),
            ">=" => Op::Ge(v),
            "!=" => Op::Ne(v),
            "<" => Op::Lt(v),
            ">" => Op::Gt(v),
            _ => Op::Eq(v),
        };
        Ok((p, Filter::Cond { fid, op }))
    }

    /// value followed by keyword sequence `words` separated by at least one whitespace.
    fn keywords(&self, pos: usize, words: &[&str]) -> Option<usize> {
        let mut p = pos;
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                p = self.ws1(p)?;
            }
            p = self.tag(p, w)?;
        }
        Some(p)
    }

    fn postfix(&self, input: usize, words: &[&str], op: Op, negate: bool) -> R<Filter> {
        let (p, fid) = self.value(input)?;
        let p = self.keywords(p, words).ok_or_else(|| self.err(p, Kind::Internal))?;
        let f = Filter::Cond { fid, op };
        Ok((p, if negate { Filter::Not(Box::new(f)) } else { f }))
    }

    fn to(&self, input: usize) -> R<Filter> {
        let (p, fid) = self.value(input)?;
        let (p, from) = self.value(p)?;
        let p = self.tag(p, "TO").ok_or_else(|| self.err(p, Kind::Internal))?;
        let p = self.ws1(p).ok_or_else(|| self.err(p, Kind::Internal))?;
        let (p, to) = self.value(p).map_err(PErr::cut)?;
        Ok((p, Filter::Cond { fid, op: Op::Between { from, to } }))
    }

    fn word_op(&self, input: usize, words: &[&str], starts_with: bool, negate: bool) -> R<Filter> {
        let (p, fid) = self.value(input)?;
        let p = self.keywords(p, words).ok_or_else(|| self.err(p, Kind::Internal))?;
        let (p, v) = self.value(p).map_err(PErr::cut)?;
        let op = if starts_with { Op::StartsWith(v) } else { Op::Contains(v) };
        let f = Filter::Cond { fid, op };
        Ok((p, if negate { Filter::Not(Box::new(f)) } else { f }))
    }

    fn error_reserved_keyword(&self, input: usize) -> R<Filter> {
        match self.condition(input) {
            Ok(r) => Ok(r),
            Err(PErr::Error(e)) | Err(PErr::Failure(e)) => match e.kind {
                Kind::ExpectedValue { reserved: true } => Err(PErr::Failure(e)),
                _ => Err(PErr::Error(e)),
            },
        }
    }

    fn primary(&self, input: usize, depth: usize) -> R<Filter> {
        if depth > MAX_FILTER_DEPTH {
            return Err(self.err(input, Kind::DepthLimitReached));
        }
        // parenthesised expression
        let p = self.ws0(input);
        if let Some(p) = self.tag(p, "(") {
            let p = self.ws0(p);
            let (p, f) = self.expression(p, depth + 1).map_err(PErr::cut)?;
            let q = self.ws0(p);
            return match self.tag(q, ")") {
                Some(q) => Ok((self.ws0(q), f)),
                None => Err(self.fail(input, Kind::MissingClosingDelimiter(')'))),
            };
        }
        type Alt<'p, 'a> = Box<dyn Fn(usize) -> R<Filter> + 'p>;
        let alts: Vec<Alt<'_, 'a>> = vec![
            Box::new(|i| self.geo_radius(i)),
            Box::new(|i| self.geo_bounding_box(i)),
            Box::new(|i| self.in_(i)),
            Box::new(|i| self.not_in(i)),
            Box::new(|i| self.condition(i)),
            Box::new(|i| self.postfix(i, &["IS", "NULL"], Op::Null, false)),
            Box::new(|i| self.postfix(i, &["IS", "NOT", "NULL"], Op::Null, true)),
            Box::new(|i| self.postfix(i, &["IS", "EMPTY"], Op::Empty, false)),
            Box::new(|i| self.postfix(i, &["IS", "NOT", "EMPTY"], Op::Empty, true)),
            Box::new(|i| self.postfix(i, &["EXISTS"], Op::Exists, false)),
            Box::new(|i| self.postfix(i, &["NOT", "EXISTS"], Op::Exists, true)),
            Box::new(|i| self.to(i)),
            Box::new(|i| self.word_op(i, &["CONTAINS"], false, false)),
            Box::new(|i| self.word_op(i, &["NOT", "CONTAINS"], false, true)),
            Box::new(|i| self.word_op(i, &["STARTS WITH"], true, false)),
            Box::new(|i| self.word_op(i, &["NOT", "STARTS WITH"], true, true)),
            Box::new(|i| self.reserved_geo(i, "_geo", true).map(|_| unreachable!())),
            Box::new(|i| self.reserved_geo(i, "_geoDistance", false).map(|_| unreachable!())),
            Box::new(|i| self.reserved_geo(i, "_geoPoint", false).map(|_| unreachable!())),
            Box::new(|i| self.error_reserved_keyword(i)),
        ];
        for alt in &alts {
            match alt(input) {
                Ok(r) => return Ok(r),
                Err(PErr::Failure(e)) => return Err(PErr::Failure(e)),
                Err(PErr::Error(_)) => continue,
            }
        }
        Err(self.err(input, Kind::InvalidPrimary))
    }

    fn not(&self, input: usize, depth: usize) -> R<Filter> {
        if depth > MAX_FILTER_DEPTH {
            return Err(self.err(input, Kind::DepthLimitReached));
        }
        let p = self.ws0(input);
        if let Some(p) = self.word_exact(p, "NOT") {
            let p = self.ws0(p);
            let (p, f) = self.not(p, depth + 1).map_err(PErr::cut)?;
            let f = match f {
                Filter::Not(inner) => *inner,
                f => Filter::Not(Box::new(f)),
            };
            return Ok((p, f));
        }
        self.primary(input, depth + 1)
    }

    fn and(&self, input: usize, depth: usize) -> R<Filter> {
        if depth > MAX_FILTER_DEPTH {
            return Err(self.err(input, Kind::DepthLimitReached));
        }
        let (mut pos, first) = self.not(input, depth + 1)?;
        let mut ands = vec![first];
        loop {
            let p = self.ws0(pos);
            let Some(p) = self.word_exact(p, "AND") else { break };
            let p = self.ws0(p);
            let (p, f) = self.not(p, depth + 1).map_err(PErr::cut)?;
            ands.push(f);
            pos = p;
        }
        Ok((pos, if ands.len() == 1 { ands.pop().unwrap() } else { Filter::And(ands) }))
    }

    fn expression(&self, input: usize, depth: usize) -> R<Filter> {
        if depth > MAX_FILTER_DEPTH {
            return Err(self.err(input, Kind::DepthLimitReached));
        }
        let (mut pos, first) = self.and(input, depth + 1)?;
        let mut ors = vec![first];
        loop {
            let p = self.ws0(pos);
            let Some(p) = self.word_exact(p, "OR") else { break };
            let p = self.ws0(p);
            let (p, f) = self.and(p, depth + 1).map_err(PErr::cut)?;
            ors.push(f);
            pos = p;
        }
        Ok((pos, if ors.len() == 1 { ors.pop().unwrap() } else { Filter::Or(ors) }))
    }
}

/// Backslash escapes inside a value (`\\`, `\"`, `\'`, `\n`, `\t`, `\r`, `\0`, `\/`).
/// `None` for an unknown escape.
fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('/') => out.push('/'),
            Some(' ') => out.push(' '),
            _ => return None,
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// canonical rendering (the search route reports attribute errors against this form)

impl Filter {
    /// Renders the filter with every field and value double-quoted, e.g. `"rating" > "8"`.
    /// Returns the text and, for each field token (by its original start), its new byte span.
    pub fn render_quoted(&self) -> Rendered {
        let mut out = String::new();
        let mut spans = Vec::new();
        self.render_into(&mut out, &mut spans);
        (out, spans)
    }

    fn render_into(&self, out: &mut String, spans: &mut Vec<(usize, usize, usize)>) {
        // tokens are written with Rust's `Debug` quoting, as Meilisearch serializes filters
        fn q(out: &mut String, t: &Token) -> (usize, usize) {
            let quoted = format!("{:?}", t.value);
            let s = out.len() + 1;
            out.push_str(&quoted);
            (s, out.len() - 1)
        }
        match self {
            Filter::Not(f) => {
                out.push_str("NOT (");
                f.render_into(out, spans);
                out.push(')');
            }
            Filter::Cond { fid, op } => {
                let (s, e) = q(out, fid);
                spans.push((fid.start, s, e));
                match op {
                    Op::Eq(v) | Op::Ne(v) | Op::Gt(v) | Op::Ge(v) | Op::Lt(v) | Op::Le(v) => {
                        let sym = match op {
                            Op::Eq(_) => "=",
                            Op::Ne(_) => "!=",
                            Op::Gt(_) => ">",
                            Op::Ge(_) => ">=",
                            Op::Lt(_) => "<",
                            _ => "<=",
                        };
                        out.push(' ');
                        out.push_str(sym);
                        out.push(' ');
                        q(out, v);
                    }
                    Op::Between { from, to } => {
                        out.push(' ');
                        q(out, from);
                        out.push_str(" TO ");
                        q(out, to);
                    }
                    Op::Exists => out.push_str(" EXISTS"),
                    Op::Null => out.push_str(" IS NULL"),
                    Op::Empty => out.push_str(" IS EMPTY"),
                    Op::Contains(v) => {
                        out.push_str(" CONTAINS ");
                        q(out, v);
                    }
                    Op::StartsWith(v) => {
                        out.push_str(" STARTS WITH ");
                        q(out, v);
                    }
                }
            }
            Filter::In { fid, els } => {
                let (s, e) = q(out, fid);
                spans.push((fid.start, s, e));
                out.push_str(" IN [");
                for (i, el) in els.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    q(out, el);
                }
                out.push(']');
            }
            Filter::Or(fs) | Filter::And(fs) => {
                let sep = if matches!(self, Filter::Or(_)) { " OR " } else { " AND " };
                for (i, f) in fs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    out.push('(');
                    f.render_into(out, spans);
                    out.push(')');
                }
            }
            Filter::GeoRadius { lat, lng, radius } => {
                out.push_str(&format!("_geoRadius({}, {}, {})", lat.value, lng.value, radius.value));
            }
            Filter::GeoBoundingBox { top_right, bottom_left } => {
                out.push_str(&format!(
                    "_geoBoundingBox([{}, {}], [{}, {}])",
                    top_right[0].value, top_right[1].value, bottom_left[0].value, bottom_left[1].value
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// checking and evaluation

/// One rule of `filterableAttributes`: a legacy string (every filter operator allowed) or an
/// object `{attributePatterns, features}` (equality on, comparison off unless enabled).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub patterns: Vec<String>,
    pub equality: bool,
    pub comparison: bool,
}

impl Rule {
    pub fn legacy(pattern: &str) -> Rule {
        Rule { patterns: vec![pattern.to_string()], equality: true, comparison: true }
    }
    fn filterable(&self) -> bool {
        self.equality || self.comparison
    }
    fn matches(&self, field: &str) -> bool {
        self.patterns.iter().any(|p| matches_pattern(p, field))
    }
}

/// The rules of a `filterableAttributes` setting value.
pub fn rules_from_setting(filterable_attributes: &Value) -> Vec<Rule> {
    let mut out = Vec::new();
    for x in filterable_attributes.as_array().into_iter().flatten() {
        match x {
            Value::String(s) => out.push(Rule::legacy(s)),
            Value::Object(o) => {
                let patterns = o
                    .get("attributePatterns")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let filter = o.get("features").and_then(|f| f.get("filter"));
                let flag = |name: &str, default: bool| filter.and_then(|f| f.get(name)).and_then(Value::as_bool).unwrap_or(default);
                out.push(Rule { patterns, equality: flag("equality", true), comparison: flag("comparison", false) });
            }
            _ => {}
        }
    }
    out
}

/// Does `field` match one filterable attribute pattern? (`attr` itself, anything nested under
/// it, or a `*` wildcard pattern.)
pub fn matches_pattern(pattern: &str, field: &str) -> bool {
    if pattern == "*" || pattern == field {
        return true;
    }
    if field.len() > pattern.len() && field.starts_with(pattern) && field.as_bytes()[pattern.len()] == b'.' {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        if let Some(prefix) = suffix.strip_suffix('*') {
            return field.contains(prefix);
        }
        return field.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return field.starts_with(prefix);
    }
    false
}

/// Why a checked filter cannot be evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// A filter error to show to the user (attribute not filterable, bad number, bad latitude).
    Invalid(FilterError),
    /// A construct the test node does not implement (`CONTAINS`, `STARTS WITH`).
    NotImplemented(&'static str),
}

/// A filter checked against an index's filterable attributes, ready to be evaluated.
#[derive(Debug, Clone)]
pub struct Compiled {
    node: Node,
}

#[derive(Debug, Clone)]
enum Node {
    True,
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Eq { path: String, norm: String, num: Option<f64> },
    /// `IN [...]`: equality with any of the values, the field looked up once.
    In { path: String, values: Vec<(String, Option<f64>)> },
    /// Number facets within the number bounds (when the bounds are numbers) and string
    /// facets (normalised) within the string bounds (the raw values), as milli does.
    Range { path: String, num: Option<(Bound<f64>, Bound<f64>)>, text: (Bound<String>, Bound<String>) },
    Exists(String),
    Null(String),
    Empty(String),
    Geo { lat: f64, lng: f64, radius: f64 },
    BBox { top: f64, right: f64, bottom: f64, left: f64 },
}

/// How errors refer back to the filter text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorForm {
    /// Spans into the text as written (documents routes).
    Original,
    /// Spans into the canonical, fully quoted rendering (search routes).
    Quoted,
}

/// Checks every field of `expr` against `filterable` patterns and compiles it.
pub fn compile(expr: &FilterExpr, filterable: &[Rule], form: ErrorForm) -> Result<Compiled, EvalError> {
    Ok(Compiled { node: compile_expr(expr, filterable, form)? })
}

fn compile_expr(expr: &FilterExpr, filterable: &[Rule], form: ErrorForm) -> Result<Node, EvalError> {
    match expr {
        FilterExpr::One(p) => {
            let ctx = Ctx::new(p, filterable, form);
            ctx.check_fields(&p.filter, 0)?;
            ctx.compile(&p.filter)
        }
        FilterExpr::And(v) => Ok(Node::And(v.iter().map(|e| compile_expr(e, filterable, form)).collect::<Result<_, _>>()?)),
        FilterExpr::Or(v) => Ok(Node::Or(v.iter().map(|e| compile_expr(e, filterable, form)).collect::<Result<_, _>>()?)),
    }
}

/// A filter rendered in canonical form, with `(original start, new start, new end)` of each field.
type Rendered = (String, Vec<(usize, usize, usize)>);

struct Ctx<'a> {
    source: &'a str,
    filterable: &'a [Rule],
    quoted: Option<Rendered>,
}

impl<'a> Ctx<'a> {
    fn new(p: &'a ParsedFilter, filterable: &'a [Rule], form: ErrorForm) -> Self {
        let quoted = (form == ErrorForm::Quoted).then(|| p.filter.render_quoted());
        Ctx { source: &p.source, filterable, quoted }
    }

    fn error(&self, tok: &Token, message: String) -> EvalError {
        if let Some((text, spans)) = &self.quoted {
            if let Some(&(_, s, e)) = spans.iter().find(|(orig, _, _)| *orig == tok.start) {
                return EvalError::Invalid(FilterError::at(text, s, e, message));
            }
            // values are not tracked in the quoted form: point at the whole text
            return EvalError::Invalid(FilterError::at(text, 0, text.len(), message));
        }
        EvalError::Invalid(FilterError::at(self.source, tok.start, tok.end, message))
    }

    fn not_filterable(&self, attribute: &str, tok: &Token) -> EvalError {
        let mut patterns: Vec<&str> = self
            .filterable
            .iter()
            .filter(|r| r.filterable())
            .flat_map(|r| r.patterns.iter().map(String::as_str))
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        let message = if patterns.is_empty() {
            format!("Attribute `{attribute}` is not filterable. This index does not have configured filterable attributes.")
        } else {
            format!(
                "Attribute `{attribute}` is not filterable. Available filterable attribute patterns are: `{}`.",
                patterns.join("`, `")
            )
        };
        self.error(tok, message)
    }

    /// The first rule matching `field` decides (milli's `matching_features`).
    fn rule(&self, field: &str) -> Option<&Rule> {
        self.filterable.iter().find(|r| r.matches(field))
    }

    fn is_filterable(&self, field: &str) -> bool {
        self.rule(field).is_some_and(Rule::filterable)
    }

    fn comparison_allowed(&self, field: &str) -> bool {
        self.rule(field).is_some_and(|r| r.comparison)
    }

    fn equality_allowed(&self, field: &str) -> bool {
        self.rule(field).is_some_and(|r| r.equality)
    }

    fn check_fields(&self, f: &Filter, depth: usize) -> Result<(), EvalError> {
        if depth > MAX_FILTER_DEPTH {
            return Ok(());
        }
        match f {
            Filter::Cond { fid, .. } | Filter::In { fid, .. } => {
                if !self.is_filterable(&fid.value) {
                    return Err(self.not_filterable(&fid.value, fid));
                }
                Ok(())
            }
            Filter::Not(inner) => self.check_fields(inner, depth + 1),
            Filter::And(v) | Filter::Or(v) => v.iter().try_for_each(|f| self.check_fields(f, depth + 1)),
            _ => Ok(()),
        }
    }

    fn number(&self, t: &Token) -> Result<f64, EvalError> {
        match t.value.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.error(t, "Non finite floats are not supported".to_string())),
            Err(e) => Err(self.error(t, e.to_string())),
        }
    }

    fn geo_enabled(&self, tok: &Token) -> Result<(), EvalError> {
        if self.is_filterable("_geo") {
            Ok(())
        } else {
            Err(self.not_filterable("_geo", tok))
        }
    }

    fn lat(&self, t: &Token) -> Result<f64, EvalError> {
        let v = self.number(t)?;
        if !(-90.0..=90.0).contains(&v) {
            return Err(self.error(t, format!("Bad latitude `{v}`. Latitude must be contained between -90 and 90 degrees. ")));
        }
        Ok(v)
    }

    fn lng(&self, t: &Token) -> Result<f64, EvalError> {
        let v = self.number(t)?;
        if !(-180.0..=180.0).contains(&v) {
            return Err(self.error(t, format!("Bad longitude `{v}`. Longitude must be contained between -180 and 180 degrees. ")));
        }
        Ok(v)
    }

    fn compile(&self, f: &Filter) -> Result<Node, EvalError> {
        Ok(match f {
            Filter::Not(inner) => Node::Not(Box::new(self.compile(inner)?)),
            Filter::And(v) => Node::And(v.iter().map(|f| self.compile(f)).collect::<Result<_, _>>()?),
            Filter::Or(v) => Node::Or(v.iter().map(|f| self.compile(f)).collect::<Result<_, _>>()?),
            Filter::In { fid, .. } | Filter::Cond { fid, op: Op::Eq(_) | Op::Ne(_) } if !self.equality_allowed(&fid.value) => {
                return Err(EvalError::NotImplemented("filterable attribute rules without the equality feature"))
            }
            Filter::In { fid, els } => Node::In {
                path: fid.value.to_string(),
                values: els.iter().map(|v| (normalize_facet(&v.value), finite(&v.value))).collect(),
            },
            Filter::Cond { fid, op } => {
                let path = fid.value.clone();
                match op {
                    Op::Eq(v) => eq_node(&path, &v.value),
                    Op::Ne(v) => Node::Not(Box::new(eq_node(&path, &v.value))),
                    Op::Gt(_) | Op::Ge(_) | Op::Lt(_) | Op::Le(_) | Op::Between { .. } if !self.comparison_allowed(&path) => {
                        return Err(EvalError::NotImplemented("filterable attribute rules without the comparison feature"))
                    }
                    Op::Gt(v) => Node::Range {
                        path,
                        num: finite(&v.value).map(|n| (Excluded(n), Included(f64::MAX))),
                        text: (Excluded(v.value.clone()), Unbounded),
                    },
                    Op::Ge(v) => Node::Range {
                        path,
                        num: finite(&v.value).map(|n| (Included(n), Included(f64::MAX))),
                        text: (Included(v.value.clone()), Unbounded),
                    },
                    Op::Lt(v) => Node::Range {
                        path,
                        num: finite(&v.value).map(|n| (Included(f64::MIN), Excluded(n))),
                        text: (Unbounded, Excluded(v.value.clone())),
                    },
                    Op::Le(v) => Node::Range {
                        path,
                        num: finite(&v.value).map(|n| (Included(f64::MIN), Included(n))),
                        text: (Unbounded, Included(v.value.clone())),
                    },
                    Op::Between { from, to } => Node::Range {
                        path,
                        num: finite(&from.value).zip(finite(&to.value)).map(|(a, b)| (Included(a), Included(b))),
                        text: (Included(from.value.clone()), Included(to.value.clone())),
                    },
                    Op::Exists => Node::Exists(path),
                    Op::Null => Node::Null(path),
                    Op::Empty => Node::Empty(path),
                    Op::Contains(_) => return Err(EvalError::NotImplemented("the `CONTAINS` filter operator")),
                    Op::StartsWith(_) => return Err(EvalError::NotImplemented("the `STARTS WITH` filter operator")),
                }
            }
            Filter::GeoRadius { lat, lng, radius } => {
                self.geo_enabled(lat)?;
                Node::Geo { lat: self.lat(lat)?, lng: self.lng(lng)?, radius: self.number(radius)? }
            }
            Filter::GeoBoundingBox { top_right, bottom_left } => {
                self.geo_enabled(&top_right[0])?;
                let (top, right) = (self.lat(&top_right[0])?, self.lng(&top_right[1])?);
                let (bottom, left) = (self.lat(&bottom_left[0])?, self.lng(&bottom_left[1])?);
                if top < bottom {
                    return Err(self.error(
                        &bottom_left[1],
                        format!("The top latitude `{top}` is below the bottom latitude `{bottom}`."),
                    ));
                }
                Node::BBox { top, right, bottom, left }
            }
        })
    }
}

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn in_bounds<T: PartialOrd + ?Sized, B: std::borrow::Borrow<T>>(x: &T, lo: &Bound<B>, hi: &Bound<B>) -> bool {
    let above = match lo {
        Included(l) => x >= l.borrow(),
        Excluded(l) => x > l.borrow(),
        Unbounded => true,
    };
    let below = match hi {
        Included(h) => x <= h.borrow(),
        Excluded(h) => x < h.borrow(),
        Unbounded => true,
    };
    above && below
}

fn eq_node(path: &str, value: &str) -> Node {
    let num = finite(value);
    Node::Eq { path: path.to_string(), norm: normalize_facet(value), num }
}

/// milli's facet normalisation: trimmed and lowercased.
pub fn normalize_facet(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Compiled {
    /// A filter that keeps every document.
    pub fn all() -> Self {
        Compiled { node: Node::True }
    }

    pub fn matches(&self, doc: &Map<String, Value>) -> bool {
        eval(&self.node, doc)
    }
}

fn eval(node: &Node, doc: &Map<String, Value>) -> bool {
    match node {
        Node::True => true,
        Node::Not(n) => !eval(n, doc),
        Node::And(v) => v.iter().all(|n| eval(n, doc)),
        Node::Or(v) => v.iter().any(|n| eval(n, doc)),
        Node::Eq { path, norm, num } => {
            let mut hit = false;
            for_each_value(doc, path, &mut |v| {
                visit_leaves(v, &mut |leaf| {
                    hit |= match leaf {
                        Value::String(s) => normalize_facet(s) == *norm,
                        Value::Number(n) => matches!((n.as_f64(), num), (Some(a), Some(b)) if a == *b),
                        Value::Bool(b) => b.to_string() == *norm,
                        _ => false,
                    }
                })
            });
            hit
        }
        Node::In { path, values } => {
            let mut hit = false;
            for_each_value(doc, path, &mut |v| {
                visit_leaves(v, &mut |leaf| {
                    hit |= match leaf {
                        Value::Number(n) => n.as_f64().is_some_and(|a| values.iter().any(|(_, b)| *b == Some(a))),
                        Value::String(s) => {
                            let s = normalize_facet(s);
                            values.iter().any(|(norm, _)| *norm == s)
                        }
                        Value::Bool(b) => {
                            let b = b.to_string();
                            values.iter().any(|(norm, _)| *norm == b)
                        }
                        _ => false,
                    }
                })
            });
            hit
        }
        Node::Range { path, num, text } => {
            let mut hit = false;
            for_each_value(doc, path, &mut |v| {
                visit_leaves(v, &mut |leaf| {
                    hit |= match leaf {
                        Value::Number(n) => match (n.as_f64(), num) {
                            (Some(x), Some((lo, hi))) => in_bounds(&x, lo, hi),
                            _ => false,
                        },
                        Value::String(s) => in_bounds(&normalize_facet(s), &text.0, &text.1),
                        Value::Bool(b) => in_bounds(&b.to_string(), &text.0, &text.1),
                        _ => false,
                    }
                })
            });
            hit
        }
        Node::Exists(path) => {
            let mut hit = false;
            for_each_value(doc, path, &mut |_| hit = true);
            hit
        }
        Node::Null(path) => {
            let mut hit = false;
            for_each_value(doc, path, &mut |v| hit |= v.is_null());
            hit
        }
        Node::Empty(path) => {
            let mut hit = false;
            for_each_value(doc, path, &mut |v| {
                hit |= match v {
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    _ => false,
                }
            });
            hit
        }
        Node::Geo { lat, lng, radius } => match geo_point(doc) {
            Some((dlat, dlng)) => haversine((*lat, *lng), (dlat, dlng)) <= *radius + f64::EPSILON,
            None => false,
        },
        Node::BBox { top, right, bottom, left } => match geo_point(doc) {
            Some((dlat, dlng)) => {
                let lat_ok = dlat <= *top && dlat >= *bottom;
                let lng_ok = if left <= right { dlng >= *left && dlng <= *right } else { dlng >= *left || dlng <= *right };
                lat_ok && lng_ok
            }
            None => false,
        },
    }
}

/// Calls `f` with every value found at the dotted `path` of the document (objects are
/// traversed, arrays of objects too; a literal dotted key also counts).
pub fn for_each_value<'d>(doc: &'d Map<String, Value>, path: &str, f: &mut dyn FnMut(&'d Value)) {
    if let Some(v) = doc.get(path) {
        f(v);
    }
    for (i, _) in path.match_indices('.') {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if let Some(v) = doc.get(head) {
            descend(v, tail, f);
        }
    }
}

fn descend<'d>(v: &'d Value, path: &str, f: &mut dyn FnMut(&'d Value)) {
    match v {
        Value::Object(m) => for_each_value(m, path, f),
        Value::Array(a) => {
            for x in a {
                descend(x, path, f);
            }
        }
        _ => {}
    }
}

fn visit_leaves<'d>(v: &'d Value, f: &mut dyn FnMut(&'d Value)) {
    match v {
        Value::Array(a) => {
            for x in a {
                visit_leaves(x, f);
            }
        }
        v => f(v),
    }
}

fn as_coord(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn geo_point(doc: &Map<String, Value>) -> Option<(f64, f64)> {
    let g = doc.get("_geo")?.as_object()?;
    Some((as_coord(g.get("lat"))?, as_coord(g.get("lng"))?))
}

/// Haversine distance in meters, as milli computes it.
pub fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let d = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * d.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn run(filter: &str, filterable: &[&str], d: &Value) -> bool {
        let expr = parse_filter_value(&json!(filter)).unwrap().unwrap();
        let fa: Vec<Rule> = filterable.iter().map(|s| Rule::legacy(s)).collect();
        compile(&expr, &fa, ErrorForm::Original).unwrap().matches(&doc(d.clone()))
    }

    #[test]
    fn syntax_errors_match_meilisearch() {
        assert_eq!(err("year >> 1925"), "Was expecting a value but instead got nothing.\n7:7 year >> 1925");
        assert_eq!(err("genres ="), "Was expecting a value but instead got nothing.\n9:9 genres =");
        assert_eq!(err("year <<< 3"), "Was expecting a value but instead got nothing.\n7:7 year <<< 3");
        assert!(err("a = 1 b = 2").starts_with("Found unexpected characters at the end of the filter: `b = 2`."));
        assert!(err("a = 1 b = 2").ends_with("\n7:12 a = 1 b = 2"));
        assert!(err("(a = 1").starts_with("Expression `(a = 1` is missing the following closing delimiter: `)`."));
        assert!(err("a = 'x").starts_with("Expression `\\'x` is missing the following closing delimiter: `'`."));
        assert!(err("_geo = 1").starts_with("`_geo` is a reserved keyword"));
        assert!(err("x IN a").starts_with("Expected `[` after `IN` keyword."));
        assert!(err("x IN [a").starts_with("Expected matching `]`"));
        assert!(err("_geoRadius(1, 2)").starts_with("The `_geoRadius` filter expects three arguments"));
        assert!(err("x = _geoRadius(1, 2, 3)").starts_with("The `_geoRadius` filter is an operation"));
        assert!(err("AND = 1").starts_with("Was expecting a value but instead got `AND`, which is a reserved keyword."));
        assert!(err("a").starts_with("Was expecting an operation `=`"));
        assert!(err("a = 1 AND").contains("but instead got nothing."));
    }

    #[test]
    fn parses_every_operator() {
        for f in [
            "a = 1", "a != 1", "a > 1", "a >= 1", "a < 1", "a <= 1", "a 1 TO 2", "a IN [1, 2]",
            "a NOT IN [1,2,]", "a EXISTS", "a NOT EXISTS", "a IS NULL", "a IS NOT NULL", "a IS EMPTY",
            "a IS NOT EMPTY", "NOT a = 1", "(a = 1 OR b = 2) AND c = 3", "'dog race' = \"big one\"",
            "_geoRadius(45.4, 9.1, 2000)", "_geoBoundingBox([1, 2], [0, 1])", "a IN []",
        ] {
            assert!(parse(f).unwrap().is_some(), "{f}");
        }
        assert!(parse("   ").unwrap().is_none());
        let p = parse("NOT NOT x = 5").unwrap().unwrap();
        assert!(matches!(p.filter, Filter::Cond { .. }));
        let p = parse("a = 1 OR b = 2 AND c = 3").unwrap().unwrap();
        match p.filter {
            Filter::Or(v) => assert!(matches!(v[1], Filter::And(_))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn equality_is_case_insensitive_and_numbers_match_strings() {
        let d = json!({"id": 1, "genres": ["Drama", "Comedy"], "year": 1922, "sid": "11", "ok": true});
        let fa = ["genres", "year", "sid", "ok", "id"];
        assert!(run("genres = drama", &fa, &d));
        assert!(run("genres = 'COMEDY '", &fa, &d));
        assert!(run("year = 1922", &fa, &d));
        assert!(run("year = \"1922\"", &fa, &d));
        assert!(run("year = 1922.0", &fa, &d));
        assert!(run("sid = 11", &fa, &d));
        assert!(!run("sid > 5", &fa, &d), "strings compare as strings: \"11\" < \"5\"");
        assert!(run("sid > 10", &fa, &d), "strings compare as strings: \"11\" > \"10\"");
        assert!(run("genres > comedy", &fa, &d), "string facets are normalised: \"drama\" > \"comedy\"");
        assert!(!run("year > abc", &fa, &d));
        assert!(run("ok = true", &fa, &d));
        assert!(run("year 1900 TO 1922", &fa, &d));
        assert!(!run("year < 1922", &fa, &d));
        assert!(run("genres IN [horror, drama]", &fa, &d));
        assert!(!run("genres NOT IN [horror, drama]", &fa, &d));
        assert!(run("genres != horror", &fa, &d));
    }

    #[test]
    fn complements_include_documents_without_the_field() {
        let d = json!({"id": 1});
        assert!(run("genre != x", &["genre"], &d));
        assert!(run("NOT genre = x", &["genre"], &d));
        assert!(run("genre NOT EXISTS", &["genre"], &d));
        assert!(!run("genre = x", &["genre"], &d));
    }

    #[test]
    fn null_empty_exists_and_nested() {
        let d = json!({"a": null, "b": "", "c": [], "d": {"e": 3, "f": [{"g": "x"}]}});
        let fa = ["a", "b", "c", "d"];
        assert!(run("a EXISTS", &fa, &d));
        assert!(run("a IS NULL", &fa, &d));
        assert!(!run("b IS NULL", &fa, &d));
        assert!(run("b IS EMPTY", &fa, &d));
        assert!(run("c IS EMPTY", &fa, &d));
        assert!(run("a IS NOT EMPTY", &fa, &d));
        assert!(run("d.e = 3", &fa, &d));
        assert!(run("d.f.g = X", &fa, &d));
    }

    #[test]
    fn miroir_shard_filter() {
        let fa = ["_miroir_shard", "genre"];
        let d = json!({"id": 1, "_miroir_shard": 5, "genre": "Drama"});
        assert!(run("_miroir_shard IN [1, 5] AND (genre = Drama)", &fa, &d));
        assert!(!run("_miroir_shard IN [1, 4] AND (genre = Drama)", &fa, &d));
    }

    #[test]
    fn array_form_is_and_of_ors() {
        let e = parse_filter_value(&json!([["g = a", "g = b"], "y < 3"])).unwrap().unwrap();
        let fa = vec![Rule::legacy("g"), Rule::legacy("y")];
        let c = compile(&e, &fa, ErrorForm::Original).unwrap();
        assert!(c.matches(&doc(json!({"g": "b", "y": 1}))));
        assert!(!c.matches(&doc(json!({"g": "c", "y": 1}))));
        assert!(!c.matches(&doc(json!({"g": "a", "y": 5}))));
        let e = parse_filter_value(&json!(true)).unwrap_err();
        assert_eq!(e.to_string(), "Invalid syntax for the filter parameter: `expected String, Array, found: true`.");
    }

    #[test]
    fn not_filterable_messages() {
        let fa: Vec<Rule> = ["year", "genres", "director", "_geo"].iter().map(|s| Rule::legacy(s)).collect();
        let e = parse_filter_value(&json!("rating > 8")).unwrap().unwrap();
        let EvalError::Invalid(o) = compile(&e, &fa, ErrorForm::Original).unwrap_err() else { panic!() };
        assert_eq!(o.to_string(), "Attribute `rating` is not filterable. Available filterable attribute patterns are: `_geo`, `director`, `genres`, `year`.\n1:7 rating > 8");
        let EvalError::Invalid(q) = compile(&e, &fa, ErrorForm::Quoted).unwrap_err() else { panic!() };
        assert_eq!(q.to_string(), "Attribute `rating` is not filterable. Available filterable attribute patterns are: `_geo`, `director`, `genres`, `year`.\n2:8 \"rating\" > \"8\"");
        let EvalError::Invalid(n) = compile(&e, &[], ErrorForm::Original).unwrap_err() else { panic!() };
        assert!(n.message.ends_with("This index does not have configured filterable attributes."));
        let e = parse_filter_value(&json!("_geoRadius(100, 2, 3)")).unwrap().unwrap();
        let EvalError::Invalid(g) = compile(&e, &fa, ErrorForm::Original).unwrap_err() else { panic!() };
        assert_eq!(g.to_string(), "Bad latitude `100`. Latitude must be contained between -90 and 90 degrees. \n12:15 _geoRadius(100, 2, 3)");
        let e = parse_filter_value(&json!("genres = 'a \\\"b' AND x = 1")).unwrap().unwrap();
        let EvalError::Invalid(q) = compile(&e, &fa, ErrorForm::Quoted).unwrap_err() else { panic!() };
        assert!(q.to_string().ends_with("\n28:29 (\"genres\" = \"a \\\"b\") AND (\"x\" = \"1\")"), "{q}");
    }

    #[test]
    fn geo_filters() {
        let fa = ["_geo"];
        let d = json!({"_geo": {"lat": 48.87, "lng": 2.33}});
        assert!(run("_geoRadius(48.85, 2.35, 3000)", &fa, &d));
        assert!(!run("_geoRadius(48.85, 2.35, 2000)", &fa, &d));
        assert!(run("_geoBoundingBox([49, 3], [48, 2])", &fa, &d));
        assert!(!run("_geoBoundingBox([48, 3], [47, 2])", &fa, &d));
        assert!((haversine((48.85, 2.35), (48.87, 2.33)) - 2662.03).abs() < 0.01);
    }

    #[test]
    fn object_rules_and_first_match() {
        let rules = rules_from_setting(&json!([
            {"attributePatterns": ["a*"], "features": {"filter": {"equality": false, "comparison": false}}},
            "abc",
            {"attributePatterns": ["n"]}
        ]));
        let d = doc(json!({"abc": 1, "n": 2}));
        let e = parse_filter_value(&json!("abc = 1")).unwrap().unwrap();
        let EvalError::Invalid(err) = compile(&e, &rules, ErrorForm::Original).unwrap_err() else { panic!() };
        assert!(err.message.ends_with("Available filterable attribute patterns are: `abc`, `n`."), "{err}");
        let e = parse_filter_value(&json!("n = 2")).unwrap().unwrap();
        assert!(compile(&e, &rules, ErrorForm::Original).unwrap().matches(&d));
        let e = parse_filter_value(&json!("n > 1")).unwrap().unwrap();
        assert!(matches!(compile(&e, &rules, ErrorForm::Original), Err(EvalError::NotImplemented(_))));
    }

    #[test]
    fn pattern_matching() {
        assert!(matches_pattern("a", "a.b"));
        assert!(!matches_pattern("a", "ab"));
        assert!(matches_pattern("a*", "abc"));
        assert!(matches_pattern("*c", "abc"));
        assert!(matches_pattern("*", "x"));
    }
}
