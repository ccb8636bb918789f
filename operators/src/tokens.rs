//! Token checks before a piece of SQL reaches the parser: sqlparser
//! backtracks, and some shapes make its work grow exponentially (each found
//! by the fuzzer). Brackets balanced and few, dotted names short, a `.`
//! only between two names, few prefix operators in a row, `CASE … END`
//! balanced and shallow.

use crate::guard::Refused;

/// How many `[` a piece of SQL may hold. The parser backtracks on every
/// `[` (array literal, subscript, or a bracketed name) and its work grows
/// exponentially with them: the fuzzer found 155 bytes with six `[` that
/// took 86 s to parse. Arrays are rare in pipelines; eight is plenty.
pub const MAX_BRACKETS: usize = 8;

/// How many dots one dotted name may hold (`catalog.schema.table.column`).
/// Long chains, found by the fuzzer (`x .a.b.c ... (`), make the parser
/// backtrack for seconds too.
pub const MAX_DOTS: usize = 3;

/// How many prefix operators (`+`, `-`, `~`, `NOT`, `CASE`) may follow
/// each other with no operand between them. The fuzzer found 442 bytes of
/// unclosed `CASE ++++ NOT +++…` whose parse time grew 3.5-fold with each
/// repetition (19 s at ten); `- -x` or `NOT -x` are as far as real
/// expressions go.
pub const MAX_PREFIX_RUN: usize = 3;

/// How deep `CASE … END` may nest.
pub const MAX_CASE_DEPTH: usize = 8;

/// Prefix operators in a row, and `CASE … END` balanced and shallow.
fn check_prefix_runs(tokens: &[sqlparser::tokenizer::Token]) -> Result<(), Refused> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::Token;
    let (mut run, mut case) = (0usize, 0usize);
    for t in tokens {
        let kw = match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
            _ => None,
        };
        match t {
            Token::Whitespace(_) => continue,
            Token::Plus | Token::Minus | Token::Tilde => run += 1,
            _ if matches!(kw, Some(Keyword::NOT | Keyword::CASE)) => run += 1,
            _ => run = 0,
        }
        if run > MAX_PREFIX_RUN {
            return Err(Refused::new(format!(
                "more than {MAX_PREFIX_RUN} operators in a row with no operand between them \
                 (a fixed limit: parsing cost grows exponentially with them)"
            )));
        }
        match kw {
            Some(Keyword::CASE) => {
                case += 1;
                if case > MAX_CASE_DEPTH {
                    return Err(Refused::new(format!(
                        "CASE nested more than {MAX_CASE_DEPTH} deep (a fixed limit)"
                    )));
                }
            }
            Some(Keyword::END) if case > 0 => case -= 1,
            _ => {}
        }
    }
    if case > 0 {
        return Err(Refused::new("unbalanced CASE: a CASE without its END"));
    }
    Ok(())
}

/// Checks the tokens of a piece of SQL before the parser sees them:
/// brackets balanced and few (see [`MAX_BRACKETS`]), dotted names short
/// (see [`MAX_DOTS`]), and a `.` only between two names (`t.col`, or
/// `t.*` in a query): the fuzzer found 296 bytes of `x .a .(y .b[c] ...`
/// — dots after a space or before a parenthesis, inside unclosed
/// parentheses — whose parse time grew eightfold with each repetition
/// (6 s at six), because the parser tries each dot as several constructs.
pub fn check_tokens(text: &str) -> Result<(), Refused> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&sqlparser::dialect::GenericDialect, text)
        .tokenize()
        .map_err(|e| Refused::new(format!("does not parse: {e}")))?;
    for (i, t) in tokens.iter().enumerate() {
        if *t == Token::Period {
            let before = i.checked_sub(1).and_then(|j| tokens.get(j));
            let after = tokens.get(i + 1);
            if !matches!(before, Some(Token::Word(_)))
                || !matches!(after, Some(Token::Word(_) | Token::Mul))
            {
                return Err(Refused::new(
                    "a \".\" must join two names with no space around it, as in t.col",
                ));
            }
        }
    }
    check_prefix_runs(&tokens)?;
    let (mut open, mut depth) = (0usize, 0i64);
    // Dots in one dotted name (`a.b.c`): the parser backtracks on those too.
    let mut dots = 0usize;
    for t in &tokens {
        match t {
            Token::LBracket => {
                open += 1;
                depth += 1;
            }
            Token::RBracket => depth -= 1,
            _ => {}
        }
        match t {
            Token::Period => dots += 1,
            Token::Word(_) => {}
            _ => dots = 0,
        }
        if dots > MAX_DOTS {
            return Err(Refused::new(format!(
                "a dotted name with more than {MAX_DOTS} dots (a fixed limit: parsing cost grows \
                 exponentially with them)"
            )));
        }
        if depth < 0 {
            return Err(Refused::new("unbalanced brackets: \"]\" without \"[\""));
        }
    }
    if depth != 0 {
        return Err(Refused::new("unbalanced brackets: \"[\" without \"]\""));
    }
    if open > MAX_BRACKETS {
        return Err(Refused::new(format!(
            "too many brackets: {open} \"[\", at most {MAX_BRACKETS} (a fixed limit: parsing \
             cost grows exponentially with them)"
        )));
    }
    Ok(())
}
