"""Every Spark job of the batch steps (docs/SPARK.md); the in-process twins live beside their steps.

`spark`: the SparkSession (`get_spark`), `ingest_spark` and `sessionize_spark`. `spark_bundle`: the jobs that
run a model bundle on the executors, `embed_spark` and `label_spark`. Import the submodules (PySpark is the
`spark` extra, so nothing here is imported with the package).
"""
