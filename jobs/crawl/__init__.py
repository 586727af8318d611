"""Hub crawling on Ray: discovery and header probes on the driver, fingerprinting in a
pool of (GPU or CPU) actors, batches committed to the catalog by the driver.

    from jobs.crawl import CrawlOptions, crawl, connect_ray
    connect_ray("auto")                       # join a cluster, else start a local Ray
    report = crawl(Catalog("cat/"), CrawlOptions(seeds=["org/model"]))
"""

from jobs.crawl.driver import CrawlReport, crawl
from jobs.crawl.options import CrawlOptions
from jobs.crawl.ray_session import connect_ray

__all__ = ["CrawlOptions", "CrawlReport", "connect_ray", "crawl"]
