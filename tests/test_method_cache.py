"""memleash.method_cache: lru_cache for methods, each instance's cache kept in the instance
(never keeping `self` alive, even through a result that refers back to it), and every
way of calling a method that functools.lru_cache allows."""

import copy
import functools
import gc
import inspect
import pickle
import weakref

import pytest

import memleash

# ---------------------------------------------------------------------------------------
# one cache per instance


class Account:
    __slots__ = ("balance", "__weakref__", "__method_cache__")   # no __dict__ needed

    def __init__(self, balance):
        self.balance = balance

    @memleash.method_cache(maxsize=4)
    def projected(self, years, rate=0.05):
        return [self.balance * (1 + rate) ** years]


def test_method_cache_caches_per_instance():
    a, b = Account(100), Account(200)
    assert a.projected(1) is a.projected(1)
    assert b.projected(1)[0] != a.projected(1)[0]
    assert a.projected.cache_info() == (2, 1, 4, 1)
    assert Account.projected.cache_info() == (2, 2, 4, 2)
    a.projected.cache_clear()
    assert a.projected.cache_info() == (0, 0, 4, 0) and b.projected.cache_info().currsize == 1
    Account.projected.cache_clear()
    assert Account.projected.cache_info() == (0, 0, 4, 0)


def test_method_cache_lets_100_000_instances_go_unlike_functools():
    class Leaky:
        @functools.lru_cache(maxsize=None)
        def value(self):
            return 1

    class Fixed:
        @memleash.method_cache(maxsize=None)
        def value(self):
            return 1

    def churn(cls, n):
        refs = []
        for _ in range(n):
            obj = cls()
            obj.value()
            refs.append(weakref.ref(obj))
        del obj
        gc.collect()
        return sum(r() is not None for r in refs)

    assert churn(Leaky, 1_000) == 1_000          # functools keeps every self alive (B019)
    assert churn(Fixed, 100_000) == 0
    assert Fixed.value.cache_info().currsize == 0 and not Fixed.value._wrappers()


def test_method_cache_bare_and_with_ttl():
    class Clocked:
        @memleash.method_cache
        def a(self, x):
            return [x]

        @memleash.method_cache(ttl=3600, typed=True)
        def b(self, x):
            return [x]

    c = Clocked()
    assert c.a(1) is c.a(1) and c.b(1) is c.b(1) and c.b(1.0) is not c.b(1)
    assert Clocked.a.cache_parameters() == {"maxsize": 128, "typed": False}
    assert c.b.cache_parameters() == {"maxsize": 128, "typed": True}


def test_method_cache_with_unhashable_instances():
    class Record(dict):                          # unhashable, compares by content
        @memleash.method_cache
        def size(self):
            return len(self)

    r1, r2 = Record(a=1), Record(a=1)
    assert r1.size() == 1 and r2.size() == 1
    assert Record.size.cache_info().misses == 2  # equal instances, separate caches


def test_method_cache_bound_method_looks_like_functools():
    class Shape:
        @memleash.method_cache
        def scaled(self, factor, *, exact=False):
            """Scaled copy."""
            return factor

    s = Shape()
    assert s.scaled.__name__ == "scaled" and s.scaled.__doc__ == "Scaled copy."
    assert s.scaled.__wrapped__ is Shape.__dict__["scaled"].__wrapped__
    assert str(inspect.signature(s.scaled)) == "(factor, *, exact=False)"
    assert s.scaled.__self__ is s


def test_method_cache_pickles_by_reference_and_copies_as_itself():
    assert pickle.loads(pickle.dumps(Gauge.scaled)) is Gauge.scaled
    assert copy.copy(Gauge.scaled) is Gauge.scaled
    assert copy.deepcopy(Gauge.scaled) is Gauge.scaled
    c = Gauge(2)
    assert pickle.loads(pickle.dumps(c.scaled))(3) == [6]    # a bound method: by its name


# ---------------------------------------------------------------------------------------
# a result that refers back to its instance (issue 19, item 1)

class Node:
    def __init__(self, parent):
        self.parent = parent


class Plain:
    @memleash.method_cache()
    def me(self):
        return self

    @memleash.method_cache(maxsize=None, max_bytes=1 << 20)
    def child(self, name):
        return Node(self)

    @memleash.method_cache(ttl=3600)
    def closure(self):
        return lambda: self


class Slotted:
    __slots__ = ("__weakref__", "__method_cache__")
    me, child, closure = Plain.me, Plain.child, Plain.closure


class SlottedBase:
    __slots__ = ("__weakref__", "__method_cache__")


class SlottedChild(SlottedBase):   # the slots declared once, in a base class
    __slots__ = ("payload",)
    me, child, closure = Plain.me, Plain.child, Plain.closure


RESULTS = {"self": lambda o: o.me(), "child with a parent link": lambda o: o.child("c"),
           "closure over self": lambda o: o.closure()}


@pytest.mark.parametrize("cls", [Plain, Slotted, SlottedChild])
@pytest.mark.parametrize("result", RESULTS.values(), ids=RESULTS.keys())
def test_a_result_that_refers_back_to_self_does_not_keep_it_alive(cls, result):
    objs = [cls() for _ in range(50)]
    for o in objs:
        result(o)
        result(o)                                # a hit: the result is stored
    assert sum(m.cache_info().currsize for m in (cls.me, cls.child, cls.closure)) == 50
    refs = [weakref.ref(o) for o in objs]
    del objs, o
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    for m in (cls.me, cls.child, cls.closure):
        assert m.cache_info().currsize == 0


def test_without_a_cycle_the_cache_goes_with_its_instance_at_once():
    class Result:
        pass

    class Owner:
        @memleash.method_cache
        def make(self):
            return Result()

    gc.disable()
    try:
        o = Owner()
        ref = weakref.ref(o.make())
        del o                                   # reference counting alone frees it all
        assert ref() is None
    finally:
        gc.enable()


def test_slots_without_the_cache_slot_raise_and_leave_the_instance_usable():
    class Point:
        __slots__ = ("x", "__weakref__")

        def __init__(self, x):
            self.x = x

        @memleash.method_cache
        def norm(self):
            return abs(self.x)

        def double(self):
            return 2 * self.x

    p = Point(-3)
    for _ in range(2):
        with pytest.raises(TypeError, match=r"add '__method_cache__' to its __slots__"):
            p.norm()
        with pytest.raises(TypeError, match=r"__method_cache__"):
            Point.norm(p)
    assert p.double() == -6 and Point.norm.cache_info() == (0, 0, 128, 0)


def test_method_cache_needs_weak_references():
    class Rigid:
        __slots__ = ("__method_cache__",)

        @memleash.method_cache
        def f(self):
            return 1

    class Number(int):                           # a __dict__, but no weak references
        @memleash.method_cache
        def f(self):
            return 1

    for obj in (Rigid(), Number(3)):
        with pytest.raises(TypeError, match="__weakref__"):
            obj.f()


def test_an_attribute_of_the_same_name_is_never_overwritten():
    class Busy:
        def __init__(self):
            self.__method_cache__ = "mine"

        @memleash.method_cache
        def f(self):
            return 1

    b = Busy()
    with pytest.raises(TypeError, match="of its own"):
        b.f()
    assert b.__method_cache__ == "mine"


# ---------------------------------------------------------------------------------------
# never copied or pickled with the instance

class Box:
    def __init__(self, items):
        self.items = items

    @memleash.method_cache
    def total(self):
        return [sum(self.items)]


class SlottedBox:
    __slots__ = ("items", "__weakref__", "__method_cache__")
    __init__, total = Box.__init__, Box.total


def pickle_copy(obj):
    return pickle.loads(pickle.dumps(obj))


COPIES = {"copy.copy": copy.copy, "copy.deepcopy": copy.deepcopy, "pickle": pickle_copy}


@pytest.mark.parametrize("cls", [Box, SlottedBox])
@pytest.mark.parametrize("how", COPIES.values(), ids=COPIES.keys())
def test_a_copy_starts_with_an_empty_cache(cls, how):
    original = cls([1, 2])
    first = original.total()
    twin = how(original)
    twin.items = [10]                            # a shallow copy shares the list: rebind it
    assert twin.total.cache_info() == (0, 0, 128, 0)
    assert twin.total() == [10] and twin.total() is twin.total()
    assert original.total() is first and original.total.cache_info() == (1, 1, 128, 1)
    assert twin.total.cache_info() == (2, 1, 128, 1)
    twin.total.cache_clear()
    assert original.total.cache_info().currsize == 1   # the caches are apart


def test_a_copy_of_an_instance_whose_original_died_starts_empty():
    original = Box([1])
    original.total()
    twin = copy.copy(original)
    del original
    gc.collect()
    third = copy.copy(twin)                      # may be where the original lived
    assert third.total.cache_info().currsize == 0 and third.total() == [1]


# ---------------------------------------------------------------------------------------
# every way functools.lru_cache on a method can be called (issue 19, item 2)

def circle_class(slotted):
    """A class with a property and a method over method_cache, its own each time."""

    class Circle:
        if slotted:
            __slots__ = ("r", "__weakref__", "__method_cache__")

        def __init__(self, r):
            self.r = r

        @property
        @memleash.method_cache
        def area(self):
            return [3 * self.r * self.r]

        @memleash.method_cache
        def scaled(self, k):
            return [self.r * k]

    return Circle


class Gauge:
    def __init__(self, r):
        self.r = r

    @memleash.method_cache
    def scaled(self, k):
        return [self.r * k]


@pytest.mark.parametrize("slotted", [False, True])
def test_property_over_method_cache(slotted):
    cls = circle_class(slotted)
    c, d = cls(1), cls(2)
    assert c.area is c.area and c.area == [3] and d.area == [12]
    assert cls.area.fget.cache_info() == (2, 2, 128, 2)
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None and cls.area.fget.cache_info().currsize == 1


@pytest.mark.parametrize("slotted", [False, True])
def test_calls_through_the_class_share_the_instances_cache(slotted):
    cls = circle_class(slotted)
    circles = [cls(r) for r in range(5)]
    via_instance = [c.scaled(2) for c in circles]
    assert [cls.scaled(c, 2) for c in circles] == via_instance
    assert all(a is b for a, b in zip(map(cls.scaled, circles, [2] * 5), via_instance))
    assert cls.scaled(k=2, self=circles[0]) == via_instance[0]   # the instance by keyword
    assert circles[0].scaled(k=2) is cls.scaled(self=circles[0], k=2)
    assert cls.scaled.cache_info() == (12, 6, 128, 6)
    assert circles[0].scaled.cache_info() == (4, 2, 128, 2)
    refs = [weakref.ref(c) for c in circles]
    del circles, via_instance
    gc.collect()
    assert [r() for r in refs] == [None] * 5


def test_the_same_calls_as_functools_give_the_same_results_and_counts():
    def build(decorator):
        class Thing:
            def __init__(self, n):
                self.n = n

            @decorator
            def f(self, x, y=0):
                return (self.n, x, y)

            @property
            @decorator
            def p(self):
                return self.n * 10

        return Thing

    ours, theirs = build(memleash.method_cache(None)), build(functools.lru_cache(None))
    calls = [
        lambda T, objs: objs[0].f(1),
        lambda T, objs: T.f(objs[1], 1),
        lambda T, objs: T.f(objs[0], 1, y=2),
        lambda T, objs: list(map(T.f, objs, [1, 1, 1])),
        lambda T, objs: objs[2].p,
        lambda T, objs: T.f(self=objs[2], x=1),
        lambda T, objs: objs[1].f(x=1),
    ]
    a, b = [ours(n) for n in range(3)], [theirs(n) for n in range(3)]
    for _ in range(3):
        for c in calls:
            assert c(ours, a) == c(theirs, b)
    assert ours.f.cache_info()[:2] == theirs.f.cache_info()[:2]
    assert ours.p.fget.cache_info()[:2] == theirs.p.fget.cache_info()[:2]


class Registry:
    @classmethod
    @memleash.method_cache
    def default(cls):
        return cls()

    @staticmethod
    @memleash.method_cache(maxsize=2)
    def parse(text, base=10):
        return [int(text, base)]


class SubRegistry(Registry):
    pass


def test_classmethod_over_method_cache_keeps_a_cache_per_class():
    assert Registry.default() is Registry.default() is Registry().default()
    assert type(SubRegistry.default()) is SubRegistry     # a cache of its own
    assert SubRegistry.default() is SubRegistry.default()
    assert Registry.__dict__["default"].__func__.cache_info() == (4, 2, 128, 2)


@pytest.mark.parametrize("slotted", [False, True])
def test_class_and_instance_caches_of_one_class_stay_apart(slotted):
    class Both:
        if slotted:
            __slots__ = ("n", "__weakref__", "__method_cache__")

        def __init__(self, n=0):
            self.n = n

        @classmethod
        @memleash.method_cache
        def made(cls):
            return [cls.__name__]

        @memleash.method_cache
        def value(self):
            return [self.n]

    class Sub(Both):
        __slots__ = ()

    first = Both.made()
    b, s = Both(1), Sub(2)
    assert b.value() == [1] and b.value() is b.value() and s.value() == [2]
    assert b.made() is first and Sub.made() == ["Sub"] and s.made() is Sub.made()
    assert Both.__dict__["made"].__func__.cache_info() == (3, 2, 128, 2)
    assert Both.value.cache_info() == (2, 2, 128, 2)


@pytest.mark.mortal_types
def test_a_class_whose_classmethod_result_refers_to_it_is_collected():
    made = type("Made", (Registry,), {})
    made.default()
    ref = weakref.ref(made)
    del made
    gc.collect()
    assert ref() is None


def test_staticmethod_over_method_cache_memoizes_as_lru_cache():
    first = Registry.parse("12")
    assert Registry.parse("12") is first and Registry().parse("12") is first
    assert Registry.parse("ff", base=16) == [255]
    Registry.parse("1"), Registry.parse("2")
    assert Registry.parse.cache_info() == (2, 4, 2, 2)
    Registry.parse.cache_clear()


@pytest.mark.parametrize("kind", [classmethod, staticmethod])
def test_method_cache_over_classmethod_or_staticmethod_is_refused(kind):
    with pytest.raises(TypeError, match=f"@method_cache goes under @{kind.__name__}"):
        memleash.method_cache(kind(lambda *a: a))


def test_bad_arguments_are_refused_when_decorating():
    with pytest.raises(TypeError, match="maxsize"):
        memleash.method_cache(-1)
    with pytest.raises(TypeError, match="needs a function"):
        memleash.method_cache()(42)
    with pytest.raises((TypeError, ValueError)):
        memleash.method_cache(ttl="soon")
    with pytest.raises((TypeError, ValueError)):
        memleash.method_cache(max_bytes=-5)


def test_called_through_the_class_without_an_instance():
    with pytest.raises(TypeError):
        Gauge.scaled()                          # as functools: f() missing its arguments
