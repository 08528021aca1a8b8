# memleash's public names, each typed in the stub or module it comes from.

from . import func as func
from . import keys as keys
from . import tracker as tracker
from .caches import Cache as Cache
from .caches import FIFOCache as FIFOCache
from .caches import LFUCache as LFUCache
from .caches import LRUCache as LRUCache
from .caches import RRCache as RRCache
from .caches import Timer as Timer
from .caches import TinyLFUCache as TinyLFUCache
from .caches import TLRUCache as TLRUCache
from .caches import TTLCache as TTLCache
from .caches import monotonic_coarse as monotonic_coarse
from .budget import Budget as Budget
from .budget import MemoryFollower as MemoryFollower
from .decorators import CacheInfo as CacheInfo
from .decorators import acached as acached
from .decorators import cache as cache
from .decorators import cached as cached
from .decorators import cachedmethod as cachedmethod
from .decorators import lru_cache as lru_cache
from .decorators import method_cache as method_cache
from .emitter import AsyncIOEventEmitter as AsyncIOEventEmitter
from .emitter import EmitterError as EmitterError
from .emitter import EventEmitter as EventEmitter
from .emitter import ListenerLeakWarning as ListenerLeakWarning
from .emitter import PyeeError as PyeeError
from .emitter import PyeeException as PyeeException
from .func import ttl_cache as ttl_cache
from .report import BudgetReport as BudgetReport
from .report import CacheReport as CacheReport
from .report import EmitterReport as EmitterReport
from .report import PrometheusCollector as PrometheusCollector
from .report import Report as Report
from .report import ResourceReport as ResourceReport
from .report import report as report
from .tiered import AsyncTieredCache as AsyncTieredCache
from .tiered import TieredCache as TieredCache
from .tracker import Resource as Resource
from .tracker import UnclosedResourceWarning as UnclosedResourceWarning
from .tracker import open_resources as open_resources
from .tracker import resource as resource
from .tracker import track as track
from .tracker import untrack as untrack

__version__: str

__all__ = [
    "AsyncIOEventEmitter", "AsyncTieredCache", "Budget", "BudgetReport", "Cache", "CacheInfo", "CacheReport", "EmitterError", "EmitterReport", "EventEmitter",
    "FIFOCache", "LFUCache", "LRUCache", "ListenerLeakWarning", "MemoryFollower", "PrometheusCollector",
    "PyeeError", "PyeeException", "RRCache", "Report", "Resource", "ResourceReport", "TLRUCache", "TTLCache", "TieredCache", "Timer",
    "TinyLFUCache", "UnclosedResourceWarning", "acached", "cache", "cached", "cachedmethod", "lru_cache",
    "method_cache", "monotonic_coarse", "open_resources", "report", "resource", "track",
    "ttl_cache", "untrack",
]
