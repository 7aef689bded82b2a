#!/usr/bin/env python3
"""Derive data/pairs.tsv: toy English / French / Chinese sentence pairs for the translation model.

The chapter's example of T5's text-to-text training is "Translate English to French: The book is on
the table" -> "Le livre est sur la table". No registry ships Tatoeba-style pairs, so we generate
them from a small grammar of our own (below): subjects with determiners and adjectives (or
pronouns), "be" with a place or an adjective, eight verbs with objects, singular and plural, present,
past and future, negation. English and French are realised by the bilingual realiser pyrealb
(PyPI `pyrealb==3.3.1`), which does the agreement (les boîtes blanches sont petites), elision
(l'école, n'est, j'ai), contraction (près du lit) and conjugation (a vu, verra); the Chinese is
built from our own parallel lexicon (classifiers: 一本书, 这张桌子; word order: 书在桌子上,
桌子上有一本书; aspect: 看见了, 会看见). pyrealb is installed into a temporary folder, not the project:

    python3 data/derive_pairs.py          # writes data/pairs.tsv (deterministic)
    python3 data/derive_pairs.py --pyrealb DIR   # the same with pyrealb already in DIR (pip --target)

Output: a header `en\\tfr\\tzh\\tsplit`, then one pair a line, split = train | heldout. About 10% is
held out, chosen by whole groups: two pairs that share their English, French or Chinese sentence
(e.g. "The book is on the table." and "The books are on the table." are both 书在桌子上。) are in
the same group, so no held-out sentence, in any of the three languages, occurs in training. The
chapter's pair is in the held-out split: the model translates it without having seen it.
"""
import os
import random
import subprocess
import sys
import tempfile

PYREALB = "pyrealb==3.3.1"
SEED = 42
MAX_CHARS = 40  # English and French sentences at most this long: small for a char-level model
TARGET = {"loc": 2200, "adj": 700, "trans": 2100}  # pairs kept per sentence type
HELD_OUT = 0.10
CHAPTER = ("The book is on the table.", "Le livre est sur la table.", "书在桌子上。")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs.tsv")

# --- the parallel lexicon (ours) -------------------------------------------------------------
# noun: English, French, Chinese, classifier, kinds; a place also lists the prepositions it takes.
NOUNS = {
    "book": ("book", "livre", "书", "本", {"thing"}),
    "pen": ("pen", "stylo", "笔", "支", {"thing"}),
    "key": ("key", "clé", "钥匙", "把", {"thing"}),
    "ball": ("ball", "balle", "球", "个", {"thing"}),
    "cup": ("cup", "tasse", "杯子", "个", {"thing"}),
    "apple": ("apple", "pomme", "苹果", "个", {"thing", "food"}),
    "cake": ("cake", "gâteau", "蛋糕", "块", {"thing", "food"}),
    "fish": ("fish", "poisson", "鱼", "条", {"food"}),
    "box": ("box", "boîte", "盒子", "个", {"thing", "open"}),
    "bag": ("bag", "sac", "包", "个", {"thing", "open"}),
    "cat": ("cat", "chat", "猫", "只", {"animal"}),
    "dog": ("dog", "chien", "狗", "只", {"animal"}),
    "boy": ("boy", "garçon", "男孩", "个", {"person"}),
    "girl": ("girl", "fille", "女孩", "个", {"person"}),
    "teacher": ("teacher", "professeur", "老师", "位", {"person"}),
    "table": ("table", "table", "桌子", "张", {"place"}),
    "chair": ("chair", "chaise", "椅子", "把", {"place"}),
    "bed": ("bed", "lit", "床", "张", {"place"}),
    "tree": ("tree", "arbre", "树", "棵", {"place"}),
    "door": ("door", "porte", "门", "扇", {"place", "open"}),
    "window": ("window", "fenêtre", "窗户", "扇", {"place", "open"}),
    "house": ("house", "maison", "房子", "座", {"place"}),
    "garden": ("garden", "jardin", "花园", "个", {"place"}),
    "room": ("room", "chambre", "房间", "个", {"place"}),
    "car": ("car", "voiture", "车", "辆", {"place"}),
}
PLACE_PREPS = {
    "table": ["on", "under", "near", "behind", "in front of"],
    "chair": ["on", "under", "near", "behind"],
    "bed": ["on", "under", "near"],
    "box": ["in", "on", "near", "behind"],
    "bag": ["in", "near"],
    "tree": ["under", "near", "behind", "in front of"],
    "door": ["near", "behind", "in front of"],
    "window": ["near", "in front of"],
    "house": ["in", "near", "behind", "in front of"],
    "garden": ["in"],
    "room": ["in"],
    "car": ["in", "under", "near", "behind", "in front of"],
}
# preposition: French, Chinese localiser after the noun (在桌子上)
PREPS = {"on": ("sur", "上"), "under": ("sous", "下"), "in": ("dans", "里"), "near": ("près de", "旁边"),
         "behind": ("derrière", "后面"), "in front of": ("devant", "前面")}
PEOPLE_PREPS = {"in", "near", "behind", "in front of"}  # a person is not "on the table"
PEOPLE_IN = {"house", "garden", "room", "car"}  # ... and is "in" only what a person fits in
# adjective: English, French, French goes before the noun?, Chinese attributive, predicative, negated
ADJS = {
    "small": ("small", "petit", True, "小", "很小", "不小"),
    "big": ("big", "grand", True, "大", "很大", "不大"),
    "red": ("red", "rouge", False, "红", "是红色的", "不是红色的"),
    "black": ("black", "noir", False, "黑", "是黑色的", "不是黑色的"),
    "white": ("white", "blanc", False, "白", "是白色的", "不是白色的"),
    "green": ("green", "vert", False, "绿", "是绿色的", "不是绿色的"),
}
SIZE = ["small", "big"]
COLOUR = ["red", "black", "white", "green"]
# determiner: English, French, Chinese singular (classifier slot {c}) and plural
DETS = {"the": ("the", "le", "", ""), "a": ("a", "un", "一{c}", None), "this": ("this", "ce", "这{c}", "这些"),
        "my": ("my", "mon", "我的", "我的")}
# pronoun: person, number, gender, Chinese
PRONOUNS = {"I": (1, "s", "m", "我"), "you": (2, "s", "m", "你"), "he": (3, "s", "m", "他"),
            "she": (3, "s", "f", "她"), "we": (1, "p", "m", "我们"), "they": (3, "p", "m", "他们")}
# verb: English, French, Chinese present / past / future (None: a stative verb, present only)
VERBS = {
    "see": ("see", "voir", ("看见", "看见了", "会看见"), {"thing", "animal", "person", "place"}),
    "eat": ("eat", "manger", ("吃", "吃了", "会吃"), {"food"}),
    "find": ("find", "trouver", ("找到", "找到了", "会找到"), {"thing", "animal"}),
    "open": ("open", "ouvrir", ("打开", "打开了", "会打开"), {"open"}),
    "take": ("take", "prendre", ("拿", "拿了", "会拿"), {"thing"}),
    "like": ("like", "aimer", ("喜欢", None, None), {"thing", "animal", "person", "food"}),
    "have": ("have", "avoir", ("有", None, None), {"thing", "animal"}),
    "want": ("want", "vouloir", ("想要", None, None), {"thing", "food"}),
}
TENSES = ["present", "past", "future"]


COLOURS_OF = {"apple": ["red", "green"], "cake": [], "fish": [], "cat": ["black", "white"], "dog": ["black", "white"],
              "boy": [], "girl": [], "teacher": [], "tree": [], "garden": [], "room": []}  # others: every colour


def adjs_for(noun):
    return SIZE + COLOURS_OF.get(noun, COLOUR)


# --- abstract sentences, drawn at random -----------------------------------------------------
# An NP spec is ("np", det, adj | None, noun, number) or ("pro", pronoun). Each part of a sentence
# is drawn with fixed odds (an adjective 1 time in 5, a plural 1 in 4, ...), so the sample looks
# like simple speech rather than like a uniform draw from the grammar, where most noun phrases
# would carry an adjective.

def pick(rng, weights):
    """A key of `weights` drawn with probability proportional to its value."""
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


NO_PLURAL = {"fish"}  # the realiser's plural is "fishes"; a meal of fish is "fish"
NOT_MY = {"boy", "girl"}  # "ma fille" is "my daughter", not "my girl"


def rand_np(rng, nouns, dets, p_adj=0.2, p_plural=0.25):
    noun = rng.choice(nouns)
    det = pick(rng, {d: w for d, w in dets.items() if not (d == "my" and noun in NOT_MY)})
    number = "p" if det != "a" and noun not in NO_PLURAL and rng.random() < p_plural else "s"
    adj = rng.choice(adjs_for(noun)) if rng.random() < p_adj else None
    return ("np", det, adj, noun, number)


SUBJECT_DETS = {"the": 45, "a": 20, "this": 15, "my": 20}
OBJECT_DETS = {"the": 50, "a": 15, "this": 15, "my": 20}


def rand_loc(rng):
    movers = [n for n, v in NOUNS.items() if v[4] & {"thing", "animal", "person"}]
    subj = ("pro", rng.choice(list(PRONOUNS))) if rng.random() < 0.15 else rand_np(rng, movers, SUBJECT_DETS)
    human = subj[0] == "pro" or "person" in NOUNS[subj[3]][4]
    def fits(place, prep):  # a person is not "on the table" nor "in my bag"
        return not human or (prep in PEOPLE_PREPS and (prep != "in" or place in PEOPLE_IN))

    places = [n for n in PLACE_PREPS if n != subj[-2] and any(fits(n, q) for q in PLACE_PREPS[n])]
    place = rng.choice(places)
    prep = rng.choice([q for q in PLACE_PREPS[place] if fits(place, q)])
    obj = rand_np(rng, [place], OBJECT_DETS, p_adj=0.15, p_plural=0)
    indefinite = (subj[0] == "np" and subj[1] == "a") or obj[1] == "a"
    neg = not indefinite and rng.random() < 0.25  # not "A book is not on the table."
    return ("loc", subj, prep, obj, neg)


def rand_adj(rng):
    if rng.random() < 0.15:
        return ("adj", ("pro", rng.choice(list(PRONOUNS))), rng.choice(SIZE), rng.random() < 0.3)
    subj = rand_np(rng, list(NOUNS), {"the": 60, "this": 20, "my": 20})
    adjs = [a for a in adjs_for(subj[3]) if a != subj[2] and not (a in SIZE and subj[2] in SIZE)]
    if not adjs:  # "the small boy": a person takes only size adjectives, and has one already
        return rand_adj(rng)
    return ("adj", subj, rng.choice(adjs), rng.random() < 0.3)


def rand_trans(rng):
    agents = [n for n, v in NOUNS.items() if v[4] & {"animal", "person"}]
    subj = ("pro", rng.choice(list(PRONOUNS))) if rng.random() < 0.3 else rand_np(rng, agents, SUBJECT_DETS)
    verb = rng.choice(list(VERBS))
    objects = [n for n, v in NOUNS.items() if v[4] & VERBS[verb][3] and n != subj[-2]]
    obj = rand_np(rng, objects, {"the": 40, "a": 30, "this": 15, "my": 15})
    tense = rng.choice([t for k, t in enumerate(TENSES) if VERBS[verb][2][k] is not None])
    return ("trans", subj, verb, obj, tense)


# --- realisation -----------------------------------------------------------------------------

def realiser(pr):
    """English and French through pyrealb; returns functions spec -> sentence."""

    def np_en(s):
        if s[0] == "pro":
            pe, n, g, _ = PRONOUNS[s[1]]
            return pr.Pro("I").pe(pe).n(n).g(g)
        _, det, adj, noun, number = s
        d = pr.D(DETS[det][0])
        if det == "my":
            d = d.pe(1)
        parts = [d] + ([pr.A(ADJS[adj][0])] if adj else []) + [pr.N(NOUNS[noun][0])]
        return pr.NP(*parts).n(number)

    def np_fr(s):
        if s[0] == "pro":
            pe, n, g, _ = PRONOUNS[s[1]]
            return pr.Pro("je").pe(pe).n(n).g(g)
        _, det, adj, noun, number = s
        d = pr.D(DETS[det][1])
        if det == "my":
            d = d.pe(1)
        a = pr.A(ADJS[adj][1]) if adj else None
        before = a is not None and ADJS[adj][2]
        parts = [d] + ([a] if before else []) + [pr.N(NOUNS[noun][1])] + ([a] if a is not None and not before else [])
        return pr.NP(*parts).n(number)

    def pp_en(prep, obj):
        if prep == "in front of":
            return pr.PP(pr.P("in"), pr.NP(pr.N("front")), pr.PP(pr.P("of"), np_en(obj)))
        return pr.PP(pr.P(prep), np_en(obj))

    def pp_fr(prep, obj):
        if prep == "near":  # près de + le -> près du: the realiser contracts de + le
            return pr.PP(pr.P("près"), pr.PP(pr.P("de"), np_fr(obj)))
        return pr.PP(pr.P(PREPS[prep][0]), np_fr(obj))

    def tense(v, t, lang):
        if t == "past":
            return v.t("ps" if lang == "en" else "pc")  # simple past / passé composé
        if t == "future":
            return v.t("f")
        return v

    def sentence(spec, lang):
        np_ = np_en if lang == "en" else np_fr
        be = "be" if lang == "en" else "être"
        if spec[0] == "loc":
            _, subj, prep, obj, neg = spec
            s = pr.S(np_(subj), pr.VP(pr.V(be), (pp_en if lang == "en" else pp_fr)(prep, obj)))
        elif spec[0] == "adj":
            _, subj, adj, neg = spec
            s = pr.S(np_(subj), pr.VP(pr.V(be), pr.A(ADJS[adj][0 if lang == "en" else 1])))
        else:
            _, subj, verb, obj, t = spec
            neg = False
            v = pr.V(VERBS[verb][0 if lang == "en" else 1])
            s = pr.S(np_(subj), pr.VP(tense(v, t, lang), np_(obj)))
        if neg:
            s = s.typ({"neg": True})
        return s.realize().strip()

    def en(spec):
        pr.loadEn()
        return sentence(spec, "en")

    def fr(spec):
        pr.loadFr()
        return sentence(spec, "fr")

    return en, fr


def np_zh(s):
    if s[0] == "pro":
        return PRONOUNS[s[1]][3]
    _, det, adj, noun, number = s
    _, _, word, clf, _ = NOUNS[noun]
    sg, pl = DETS[det][2], DETS[det][3]
    d = (sg if number == "s" else pl).format(c=clf)
    return d + (ADJS[adj][3] if adj else "") + word


def zh(spec):
    if spec[0] == "loc":
        _, subj, prep, obj, neg = spec
        where = np_zh(obj) + PREPS[prep][1]
        if subj[0] == "np" and subj[1] == "a":
            return f"{where}有{np_zh(subj)}。"  # existential: 桌子上有一本书。
        return f"{np_zh(subj)}{'不' if neg else ''}在{where}。"
    if spec[0] == "adj":
        _, subj, adj, neg = spec
        return f"{np_zh(subj)}{ADJS[adj][5 if neg else 4]}。"
    _, subj, verb, obj, t = spec
    return f"{np_zh(subj)}{VERBS[verb][2][TENSES.index(t)]}{np_zh(obj)}。"


# --- the split -------------------------------------------------------------------------------

def groups(pairs):
    """Union-find over pairs that share a sentence in any language -> group id per pair."""
    parent = list(range(len(pairs)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for i, p in enumerate(pairs):
        for lang, s in zip("efz", p):
            j = first.setdefault((lang, s), i)
            parent[find(i)] = find(j)
    return [find(i) for i in range(len(pairs))]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        # `--pyrealb DIR` reuses a folder where pyrealb 3.3.1 is already installed (pip --target)
        if len(sys.argv) == 3 and sys.argv[1] == "--pyrealb":
            tmp = sys.argv[2]
        else:
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "--no-deps", "--target", tmp, PYREALB], check=True)
        sys.path.insert(0, tmp)
        import pyrealb as pr
        en, fr = realiser(pr)

        rng = random.Random(SEED)
        chapter_spec = ("loc", ("np", "the", None, "book", "s"), "on", ("np", "the", None, "table", "s"), False)
        pairs, seen = [], set()

        def add(spec):
            p = (en(spec), fr(spec), zh(spec))
            assert "[[" not in p[0] + p[1], f"pyrealb did not know a word: {p}"
            if p[0] in seen or max(len(p[0]), len(p[1])) > MAX_CHARS:
                return False
            seen.add(p[0])
            pairs.append(p)
            return True

        add(chapter_spec)
        for kind, draw in (("loc", rand_loc), ("adj", rand_adj), ("trans", rand_trans)):
            kept = tries = 0
            while kept < TARGET[kind]:
                tries += 1
                assert tries < 20 * TARGET[kind], f"{kind}: too few distinct short sentences"
                kept += add(draw(rng))
            print(f"{kind:5s}: {kept} pairs kept of {tries} drawn (repeats and sentences over {MAX_CHARS} chars dropped)")
        assert pairs[0] == CHAPTER, f"the chapter's pair came out as {pairs[0]}"

    gid = groups(pairs)
    members = {}
    for i, g in enumerate(gid):
        members.setdefault(g, []).append(i)
    order = sorted(members, key=lambda g: min(members[g]))  # groups in first-appearance order
    rng.shuffle(order)
    held = set(members[gid[0]])  # the chapter's group first
    for g in order:
        if len(held) >= HELD_OUT * len(pairs):
            break
        held.update(members[g])
    split = ["heldout" if i in held else "train" for i in range(len(pairs))]

    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write("en\tfr\tzh\tsplit\n")
        for p, s in zip(pairs, split):
            f.write("\t".join(p + (s,)) + "\n")
    chars = {lang: len(set("".join(p[k] for p in pairs))) for k, lang in enumerate(("en", "fr", "zh"))}
    print(f"wrote {OUT}: {len(pairs)} pairs, {len(held)} held out ({len(held) / len(pairs):.1%}) in "
          f"{len({gid[i] for i in held})} groups; longest en {max(len(p[0]) for p in pairs)}, "
          f"fr {max(len(p[1]) for p in pairs)}, zh {max(len(p[2]) for p in pairs)} chars; "
          f"distinct chars en {chars['en']}, fr {chars['fr']}, zh {chars['zh']}")
    print("chapter pair:", "\t".join(pairs[0]), split[0])


if __name__ == "__main__":
    main()
