"""Hub crawling on Ray: discovery and header probes on the driver, fingerprinting in a
pool of (GPU or CPU) actors, batches committed to the catalog by the driver.

    from jobs.crawl import CrawlOptions, crawl, connect_ray
    connect_ray("auto")                       # join a cluster, else start a local Ray
    report = crawl(Catalog("cat/"), CrawlOptions(seeds=["org/model"]))
"""

from jobs.crawl.options import CrawlOptions

__all__ = ["CrawlOptions", "CrawlReport", "connect_ray", "crawl"]


def __getattr__(name: str):
    # Ray and torch load only when a crawl is really started (`lineage --help` stays fast).
    if name in ("crawl", "CrawlReport"):
        from jobs.crawl import driver

        return getattr(driver, name)
    if name == "connect_ray":
        from jobs.ray_session import connect_ray

        return connect_ray
    raise AttributeError(name)
