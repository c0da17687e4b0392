//! Tokenization and word matching, following Meilisearch (charabia + milli) for ASCII and
//! Latin text: words are runs of alphanumeric characters, lowercased with diacritics removed;
//! a "hard" separator (end of sentence) between two words puts them 8 positions apart,
//! a "soft" one 1 position apart; the values of an array are 8 positions apart.

/// Distance added between two words separated by a hard separator, and between two values
/// of an array (milli's `MAX_DISTANCE`).
pub const MAX_DISTANCE: u16 = 8;

/// One word of a text, with its place in the original string.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Normalized (lowercased, unaccented) word.
    pub word: String,
    /// Byte range of the word in the original text.
    pub start: usize,
    pub end: usize,
    /// Whether a hard separator precedes this word (since the previous word).
    pub hard_before: bool,
}

pub fn is_hard_separator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | ';' | '…' | '\n' | '\r' | '。' | '！' | '？' | '；')
}

/// Lowercases and removes the diacritics of one character (Latin letters only).
pub fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let folded = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "a",
        'æ' | 'Æ' => "ae",
        'ç' | 'Ç' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => "i",
        'ñ' | 'Ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "o",
        'œ' | 'Œ' => "oe",
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => "u",
        'ý' | 'ÿ' | 'Ý' => "y",
        'ß' => "ss",
        _ => {
            out.extend(c.to_lowercase());
            return;
        }
    };
    out.push_str(folded);
}

/// Normalizes a whole string (lowercase, no diacritics), keeping separators.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// Splits a text into words.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut hard = false;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            match &mut current {
                Some((_, w)) => fold_char(c, w),
                None => {
                    let mut w = String::new();
                    fold_char(c, &mut w);
                    current = Some((i, w));
                }
            }
        } else {
            if let Some((start, word)) = current.take() {
                tokens.push(Token { word, start, end: i, hard_before: hard });
                hard = false;
            }
            if is_hard_separator(c) && !tokens.is_empty() {
                hard = true;
            }
        }
    }
    if let Some((start, word)) = current.take() {
        tokens.push(Token { word, start, end: text.len(), hard_before: hard });
    }
    tokens
}

/// Positions of the tokens of one text value starting at `first`
/// (hard separators add [`MAX_DISTANCE`], soft ones 1).
pub fn positions(tokens: &[Token], first: u16) -> Vec<u16> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut pos = first;
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            pos = pos.saturating_add(if t.hard_before { MAX_DISTANCE } else { 1 });
        }
        out.push(pos);
    }
    out
}

/// milli's `bucketed_position`.
pub fn bucketed_position(relative: u16) -> u16 {
    if relative < 16 {
        relative
    } else if relative < 24 {
        24
    } else {
        (relative as f64).log2().ceil().exp2() as u16
    }
}

/// Damerau-Levenshtein distance (optimal string alignment, transpositions cost 1) between
/// `query` and `word`; when `prefix`, the smallest distance between `query` and any prefix of
/// `word`, with the length (in chars) of the best prefix.
pub fn distance(query: &[char], word: &[char], prefix: bool) -> (usize, usize) {
    let n = query.len();
    let m = word.len();
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(query[i - 1] != word[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && query[i - 1] == word[j - 2] && query[i - 2] == word[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    if prefix {
        let mut best = (d[n][0], 0);
        for (j, &v) in d[n].iter().enumerate().skip(1) {
            if v < best.0 {
                best = (v, j);
            }
        }
        best
    } else {
        (d[n][m], m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_splits_and_normalizes() {
        let t = tokenize("The Cabinet of Dr. Caligari");
        let words: Vec<_> = t.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(words, ["the", "cabinet", "of", "dr", "caligari"]);
        assert_eq!(positions(&t, 0), [0, 1, 2, 3, 11]);
        assert_eq!(&"The Cabinet"[t[1].start..t[1].end], "Cabinet");
        assert_eq!(tokenize("Café déjà-vu")[0].word, "cafe");
    }

    #[test]
    fn distances() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(distance(&c("metropolsi"), &c("metropolis"), false).0, 1);
        assert_eq!(distance(&c("kitten"), &c("sitting"), false).0, 3);
        assert_eq!(distance(&c("metrop"), &c("metropolis"), true), (0, 6));
        assert_eq!(distance(&c("metrap"), &c("metropolis"), true).0, 1);
    }

    #[test]
    fn bucketed_positions() {
        assert_eq!(bucketed_position(15), 15);
        assert_eq!(bucketed_position(16), 24);
        assert_eq!(bucketed_position(25), 32);
    }
}
