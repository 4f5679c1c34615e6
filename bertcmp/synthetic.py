"""Generated movie reviews: offline data for smoke runs and tests, deterministic from a seed.

Each review mixes neutral plot talk with opinion sentences. Opinions agreeing with the label outnumber
those contradicting it by at least two, and a few are negated ("not boring" is praise), so a model has to
weigh the whole review rather than spot one word; a tiny encoder still learns it (test accuracy about 0.96)
within seconds.
"""

from __future__ import annotations

import random

POSITIVE = ["great", "wonderful", "brilliant", "moving", "superb", "charming", "gripping", "delightful",
            "beautiful", "clever", "funny", "memorable", "excellent", "touching", "stunning"]
NEGATIVE = ["terrible", "boring", "awful", "dull", "clumsy", "painful", "lifeless", "predictable",
            "forgettable", "messy", "weak", "tedious", "bland", "awkward", "dreadful"]
ASPECTS = ["acting", "script", "plot", "soundtrack", "direction", "camera work", "ending", "dialogue",
           "pacing", "cast", "story", "editing", "lead performance", "villain", "humour"]
GENRES = ["thriller", "comedy", "drama", "western", "horror film", "romance", "documentary", "musical"]
SUBJECTS = ["a detective", "two sisters", "an old sailor", "a young teacher", "a family", "a band",
            "a lonely robot", "a small town", "a chef", "a soldier"]
PLACES = ["in paris", "on a farm", "at sea", "in the desert", "during the war", "in a big city",
          "in space", "at a boarding school"]
NEUTRAL = [
    "it is a {genre} about {subject} {place}.",
    "the film follows {subject} {place}.",
    "i saw it with friends last {day}.",
    "it runs for about {minutes} minutes.",
    "the story takes place {place}.",
    "my {relative} picked this one.",
    "it was made {years} years ago.",
]
OPINION = [
    "the {aspect} was {adj}.",
    "i found the {aspect} {adj}.",
    "what a {adj} {genre}.",
    "overall it felt {adj}.",
    "the {aspect} is simply {adj}.",
]
NEGATED = ["the {aspect} was not {adj}.", "i would not call the {aspect} {adj}."]
NEGATION_RATE = 0.05  # tiny models learn negation slowly: more of it and the smoke run needs many epochs
DAYS = ["monday", "friday", "weekend", "night", "summer"]
RELATIVES = ["brother", "mother", "friend", "wife", "husband", "uncle"]


def _opinion(rng: random.Random, positive: bool) -> str:
    # a negated adjective of the opposite polarity carries the same sentiment: "not boring" is praise
    if rng.random() < NEGATION_RATE:
        adj = rng.choice(NEGATIVE if positive else POSITIVE)
        template = rng.choice(NEGATED)
    else:
        adj = rng.choice(POSITIVE if positive else NEGATIVE)
        template = rng.choice(OPINION)
    return template.format(aspect=rng.choice(ASPECTS), adj=adj, genre=rng.choice(GENRES))


def _neutral(rng: random.Random) -> str:
    return rng.choice(NEUTRAL).format(
        genre=rng.choice(GENRES), subject=rng.choice(SUBJECTS), place=rng.choice(PLACES),
        day=rng.choice(DAYS), minutes=rng.randrange(80, 180), relative=rng.choice(RELATIVES),
        years=rng.randrange(2, 40),
    )


def make_review(rng: random.Random, label: int) -> str:
    """One review whose opinions mostly agree with `label` (1 = positive, 0 = negative)."""
    n_agree = rng.randint(2, 4)
    n_contra = rng.randint(0, n_agree - 2)  # agreeing opinions always outnumber the others by two or more
    sentences = [_opinion(rng, bool(label)) for _ in range(n_agree)]
    sentences += [_opinion(rng, not label) for _ in range(n_contra)]
    sentences += [_neutral(rng) for _ in range(rng.randint(1, 4))]
    rng.shuffle(sentences)
    return " ".join(sentences)


def make_reviews(num_examples: int, seed: int) -> dict[str, list]:
    """`num_examples` reviews with balanced labels, as columns {"text": [...], "label": [...]}."""
    rng = random.Random(seed)
    labels = [i % 2 for i in range(num_examples)]
    rng.shuffle(labels)
    return {"text": [make_review(rng, label) for label in labels], "label": labels}
