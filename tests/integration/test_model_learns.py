"""The model learns the vowels (docs/API.md section 4) from the client's mercurial followups."""
from client.client import is_vowel, plan, wants_followup

SEED = 7
CONVERSATIONS = 3000


def test_guess_accuracy_rises_above_85_percent(make_app, memory_dir):
    api = make_app("sqlite", OG_SEED=SEED, OG_SQLITE_PATH=memory_dir / "og.sqlite3")
    right = []
    for index in range(CONVERSATIONS):
        conversation, symbol, rng = plan(SEED, index)
        response = api.client.post("/initial", json={"uuid": conversation, "symbol": symbol})
        assert response.status_code == 200
        guess = response.get_json()["vowel"]
        right.append(guess == is_vowel(symbol))
        if wants_followup(symbol, guess, rng):
            assert api.client.post("/followup", json={"uuid": conversation}).status_code == 200

    tenth = CONVERSATIONS // 10
    first, last = sum(right[:tenth]) / tenth, sum(right[-tenth:]) / tenth
    # With epsilon 0.1 a model that has learned every symbol is right ~90% of the time.
    assert last > 0.85, (first, last)
    assert first < last, (first, last)
