//! The built-in static embedding: a text as a 256-dimension vector of
//! hashed features — words, word pairs and the letter trigrams inside words
//! — with common function words weighted down. It needs no model weights
//! and no call, so a lookup costs microseconds; what it matches is wording
//! (case, punctuation, contractions, a word added or moved), not
//! meaning: for synonyms and paraphrase, configure an embedding model.
//!
//! The hash is FNV-1a, fixed here rather than taken from std, because
//! vectors are shared through Redis by instances that must agree on them.

pub const DIMS: usize = 256;

/// Words that carry little of what a question asks.
const LIGHT: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from", "hello", "hey", "hi",
    "how", "i", "in", "is", "it", "just", "me", "my", "of", "on", "or", "please", "s", "so", "tell", "thanks", "that", "the",
    "this", "to", "was", "what", "whats", "which", "who", "will", "with", "would", "you", "your",
];

pub fn builtin(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMS];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let weight = |w: &str| if LIGHT.contains(&w) { 0.25 } else { 1.0 };
    for w in &words {
        let ww = weight(w);
        add(&mut v, &[b"w:", w.as_bytes()], ww);
        // Trigrams of the word with its edges marked, so a misspelling
        // still shares most of its features.
        let chars: Vec<char> = std::iter::once('^').chain(w.chars()).chain(std::iter::once('$')).collect();
        for t in chars.windows(3) {
            let s: String = t.iter().collect();
            add(&mut v, &[b"t:", s.as_bytes()], 0.5 * ww);
        }
    }
    for pair in words.windows(2) {
        let ww = weight(pair[0]).max(weight(pair[1]));
        add(&mut v, &[b"p:", pair[0].as_bytes(), b" ", pair[1].as_bytes()], 0.5 * ww);
    }
    normalize(&mut v);
    v
}

fn add(v: &mut [f32], parts: &[&[u8]], weight: f32) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // The top bit signs the feature, so collisions cancel rather than pile up.
    let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
    v[(h % DIMS as u64) as usize] += sign * weight;
}

/// Scales to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(a: &str, b: &str) -> f32 {
        cosine(&builtin(a), &builtin(b))
    }

    #[test]
    fn rewordings_are_close_and_different_questions_are_not() {
        let q = "What is the capital of France?";
        assert!((sim(q, q) - 1.0).abs() < 1e-5);
        for close in ["what is the capital of france", "What's the capital of France ?", "Tell me: what is the capital of France?", "the capital of France is what?"] {
            assert!(sim(q, close) > 0.95, "{close}: {}", sim(q, close));
        }
        for far in ["What is the capital of Germany?", "How tall is the Eiffel Tower?", "capital gains tax in France",
            // Wording, not meaning: a misspelt word is a different question to it.
            "what is the capitol of France?"] {
            assert!(sim(q, far) < 0.75, "{far}: {}", sim(q, far));
        }
        assert_eq!(builtin(""), vec![0.0; DIMS]);
    }
}
