"""Generated data for smoke runs and tests, offline and deterministic from a seed: movie reviews (two
classes) and news topics (four classes, string labels).

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


TOPICS = {  # four news topics, as in AG News; the label names are strings, as many users' own labels are
    "business": ["the shares", "the bank", "the merger", "the quarterly profit", "the stock market", "the retailer",
                 "the oil price", "the central bank", "the start-up", "the tax plan"],
    "science": ["the telescope", "the vaccine", "the new species", "the experiment", "the rover", "the fossil",
                "the climate model", "the particle detector", "the genome", "the satellite"],
    "sports": ["the striker", "the home team", "the final", "the coach", "the marathon", "the goalkeeper",
               "the title race", "the tennis champion", "the league", "the relay team"],
    "world": ["the president", "the peace talks", "the election", "the embassy", "the border", "the ceasefire",
              "the prime minister", "the summit", "the refugees", "the parliament"],
}
# subjects two topics share: an item that names only these cannot be told apart, as in real news (about 95 %
# accuracy is the most there is)
SHARED = {("business", "world"): ["the trade deal", "the sanctions", "the oil embargo"],
          ("science", "world"): ["the climate summit", "the pandemic", "the space agency"],
          ("business", "sports"): ["the stadium deal", "the sponsorship", "the transfer fee"],
          ("science", "sports"): ["the doping test", "the injury study", "the sports scientist"]}
for pair, subjects in SHARED.items():
    for topic in pair:
        TOPICS[topic] = TOPICS[topic] + subjects
TOPIC_VERBS = ["surprised everyone", "made headlines", "drew criticism", "was in the news", "changed course",
               "set a record", "faced delays", "won praise", "raised questions", "moved forward"]
TOPIC_FILLER = ["reporters said on {day}.", "more details are expected soon.", "it happened {place}.",
                "officials did not comment.", "the story is still developing.", "analysts were divided."]


def make_topic(rng: random.Random, topic: str) -> str:
    """A short news item about `topic`: its subjects outnumber those of other topics by one or more, among filler."""
    own = rng.randint(1, 3)
    sentences = [f"{rng.choice(TOPICS[topic])} {rng.choice(TOPIC_VERBS)}." for _ in range(own)]
    for _ in range(rng.randint(0, own - 1)):  # stray subjects, so a single word cannot decide
        other = rng.choice([t for t in TOPICS if t != topic])
        sentences.append(f"{rng.choice(TOPICS[other])} {rng.choice(TOPIC_VERBS)}.")
    sentences += [rng.choice(TOPIC_FILLER).format(day=rng.choice(DAYS), place=rng.choice(PLACES))
                  for _ in range(rng.randint(1, 3))]
    rng.shuffle(sentences)
    return " ".join(sentences)


def make_topics(num_examples: int, seed: int) -> dict[str, list]:
    """`num_examples` news items over four topics with string labels, balanced, as {"text": [...], "label": [...]}."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    labels = [names[i % len(names)] for i in range(num_examples)]
    rng.shuffle(labels)
    return {"text": [make_topic(rng, label) for label in labels], "label": labels}


GENERATORS = {"reviews": make_reviews, "topics": make_topics}  # data.synthetic's options
