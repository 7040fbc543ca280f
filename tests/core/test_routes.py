"""RouteTable: model name -> (target, upstream model)."""

OPENAI = object()
AZURE = object()
GROQ = object()
ANTHROPIC = object()
CATCH_ALL = object()


def test_empty_table_routes_nothing(core):
    table = core.RouteTable()
    assert table.lookup("gpt-4o") is None
    assert table.lookup("") is None


def test_exact(core):
    table = core.RouteTable()
    table.add_exact("gpt-4o", OPENAI)
    table.add_exact("gpt-4o-mini", AZURE)
    assert table.lookup("gpt-4o") == (OPENAI, "gpt-4o")
    assert table.lookup("gpt-4o-mini") == (AZURE, "gpt-4o-mini")
    assert table.lookup("gpt-4o")[0] is OPENAI


def test_exact_is_exact(core):
    table = core.RouteTable()
    table.add_exact("gpt-4o", OPENAI)
    for near in ["gpt-4", "gpt-4o ", " gpt-4o", "gpt-4o-mini", "xgpt-4o", ""]:
        assert table.lookup(near) is None, near


def test_alias_routes_to_the_same_target_under_its_own_name(core):
    table = core.RouteTable()
    table.add_exact("gpt-4o", OPENAI)
    table.add_exact("smart", OPENAI)
    assert table.lookup("smart") == (OPENAI, "smart")
    assert table.lookup("gpt-4o") == (OPENAI, "gpt-4o")


def test_prefix_returns_the_remainder(core):
    table = core.RouteTable()
    table.add_prefix("groq", GROQ)
    assert table.lookup("groq/llama3-70b") == (GROQ, "llama3-70b")
    assert table.lookup("groq/meta-llama/llama-4") == (GROQ, "meta-llama/llama-4")
    assert table.lookup("groq") is None
    assert table.lookup("groqx/llama3") is None
    assert table.lookup("xgroq/llama3") is None
    assert table.lookup("llama3") is None


def test_several_prefixes(core):
    table = core.RouteTable()
    table.add_prefix("groq", GROQ)
    table.add_prefix("anthropic", ANTHROPIC)
    assert table.lookup("anthropic/claude-sonnet-4") == (ANTHROPIC, "claude-sonnet-4")
    assert table.lookup("groq/x") == (GROQ, "x")


def test_exact_beats_prefix(core):
    table = core.RouteTable()
    table.add_prefix("groq", GROQ)
    table.add_exact("groq/llama3", OPENAI)
    assert table.lookup("groq/llama3") == (OPENAI, "groq/llama3")
    assert table.lookup("groq/mixtral") == (GROQ, "mixtral")


def test_prefix_beats_wildcard(core):
    table = core.RouteTable()
    table.add_wildcard("groq/*", CATCH_ALL)
    table.add_prefix("groq", GROQ)
    assert table.lookup("groq/llama3") == (GROQ, "llama3")


def test_exact_beats_wildcard(core):
    table = core.RouteTable()
    table.add_wildcard("gpt-*", AZURE)
    table.add_exact("gpt-4o", OPENAI)
    assert table.lookup("gpt-4o") == (OPENAI, "gpt-4o")
    assert table.lookup("gpt-4.1") == (AZURE, "gpt-4.1")


def test_wildcard_keeps_the_whole_model_name(core):
    table = core.RouteTable()
    table.add_wildcard("claude-*", ANTHROPIC)
    assert table.lookup("claude-3-5-sonnet-latest") == (ANTHROPIC, "claude-3-5-sonnet-latest")
    assert table.lookup("gpt-4o") is None


def test_wildcard_matches_the_whole_name(core):
    table = core.RouteTable()
    table.add_wildcard("gpt-*", OPENAI)
    assert table.lookup("xgpt-4") is None
    assert table.lookup("gp-4") is None
    table2 = core.RouteTable()
    table2.add_wildcard("*-mini", OPENAI)
    assert table2.lookup("gpt-4o-mini") == (OPENAI, "gpt-4o-mini")
    assert table2.lookup("gpt-4o-mini-2024") is None


def test_wildcard_in_the_middle_and_several_stars(core):
    table = core.RouteTable()
    table.add_wildcard("claude-*-sonnet*", ANTHROPIC)
    assert table.lookup("claude-3-5-sonnet-20241022") == (ANTHROPIC, "claude-3-5-sonnet-20241022")
    assert table.lookup("claude-3-opus") is None
    table.add_wildcard("*o*", OPENAI)
    assert table.lookup("gpt-4o") == (OPENAI, "gpt-4o")


def test_star_runs_over_slashes_and_dots(core):
    table = core.RouteTable()
    table.add_wildcard("accounts/*/models/*", OPENAI)
    assert table.lookup("accounts/fireworks/models/llama-v3p1-8b") == (
        OPENAI,
        "accounts/fireworks/models/llama-v3p1-8b",
    )


def test_more_literal_characters_first(core):
    table = core.RouteTable()
    table.add_wildcard("*", CATCH_ALL)
    table.add_wildcard("gpt-*", OPENAI)
    table.add_wildcard("gpt-4o*", AZURE)
    assert table.lookup("gpt-4o-mini") == (AZURE, "gpt-4o-mini")
    assert table.lookup("gpt-3.5-turbo") == (OPENAI, "gpt-3.5-turbo")
    assert table.lookup("mistral-large") == (CATCH_ALL, "mistral-large")


def test_more_literal_characters_first_whatever_the_insertion_order(core):
    table = core.RouteTable()
    table.add_wildcard("gpt-4o*", AZURE)
    table.add_wildcard("gpt-*", OPENAI)
    table.add_wildcard("*", CATCH_ALL)
    assert table.lookup("gpt-4o-mini") == (AZURE, "gpt-4o-mini")
    assert table.lookup("gpt-3.5-turbo") == (OPENAI, "gpt-3.5-turbo")
    assert table.lookup("o3") == (CATCH_ALL, "o3")


def test_stars_are_not_literal_characters(core):
    # "a*b*c*" has 3 literal characters, "ab*" has 2
    table = core.RouteTable()
    table.add_wildcard("ab*", OPENAI)
    table.add_wildcard("a*b*c*", AZURE)
    assert table.lookup("abc") == (AZURE, "abc")
    assert table.lookup("abx") == (OPENAI, "abx")


def test_equal_literal_characters_in_insertion_order(core):
    table = core.RouteTable()
    table.add_wildcard("gpt-*", OPENAI)
    table.add_wildcard("gp*4o", AZURE)  # 4 literal characters each
    assert table.lookup("gpt-4o") == (OPENAI, "gpt-4o")
    other = core.RouteTable()
    other.add_wildcard("gp*4o", AZURE)
    other.add_wildcard("gpt-*", OPENAI)
    assert other.lookup("gpt-4o") == (AZURE, "gpt-4o")


def test_wildcard_without_star_is_literal(core):
    table = core.RouteTable()
    table.add_wildcard("gpt-4o", OPENAI)
    assert table.lookup("gpt-4o") == (OPENAI, "gpt-4o")
    assert table.lookup("gpt-4o-mini") is None


def test_regex_characters_are_literal(core):
    table = core.RouteTable()
    table.add_wildcard("a.b+c?*", OPENAI)
    assert table.lookup("a.b+c?d") == (OPENAI, "a.b+c?d")
    assert table.lookup("axb+c?d") is None
    assert table.lookup("a.bbc?d") is None


def test_no_match_is_none(core):
    table = core.RouteTable()
    table.add_exact("gpt-4o", OPENAI)
    table.add_prefix("groq", GROQ)
    table.add_wildcard("claude-*", ANTHROPIC)
    assert table.lookup("mistral-large") is None
    assert table.lookup("claude") is None


def test_non_ascii_model_names(core):
    table = core.RouteTable()
    table.add_exact("mod\u00e8le", OPENAI)
    table.add_wildcard("\u2603-*", AZURE)
    assert table.lookup("mod\u00e8le") == (OPENAI, "mod\u00e8le")
    assert table.lookup("\u2603-x") == (AZURE, "\u2603-x")


def test_many_routes(core):
    table = core.RouteTable()
    targets = [object() for _ in range(1000)]
    for i, target in enumerate(targets):
        table.add_exact(f"model-{i}", target)
    assert all(table.lookup(f"model-{i}") == (t, f"model-{i}") for i, t in enumerate(targets))
    assert table.lookup("model-1000") is None
