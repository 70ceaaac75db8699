"""Loads the selected profile in a fresh process and prints, as JSON, where its main settings point and every
setting of every ``luigi.Config`` class (run by ``test_config_and_services`` from another directory)."""

import importlib
import json
import pkgutil

import luigi
import luigi.contrib.hdfs.config  # noqa: F401
import luigi.contrib.hdfs.webhdfs_client  # noqa: F401

import pipeline
import pipeline.tasks
from pipeline import config
from pipeline.io import fs

profile = config.load_profile()
for pkg in (pipeline, pipeline.tasks):
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "__main__":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


settings = {}
for cls in subclasses(luigi.Config):
    if cls.__module__.startswith(("pipeline", "luigi.contrib.hdfs")):
        obj = cls()  # every parameter resolves from the config files, or this raises
        for name, _ in cls.get_params():
            settings[f"{cls.__module__}.{cls.__name__}.{name}"] = str(getattr(obj, name))
marker = fs.target(fs.join(config.warehouse().uri, "_markers", "x.json"))
print(json.dumps({"profile": profile, "warehouse": config.warehouse().uri, "master": config.spark().master,
                  "metastore": config.metastore().uri, "hs2": [config.hiveserver2().host, config.hiveserver2().port],
                  "scheduler": luigi.configuration.get_config().get("core", "scheduler_host"),
                  "marker": [type(marker).__name__, marker.path],
                  "source": str(config.replay().source_path / "2010-12-01.csv.gz"), "settings": settings}))
