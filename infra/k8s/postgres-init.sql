-- The databases ragtune's services use besides the default one: MLflow's runs (mlflow), its users (mlflow_auth),
-- Prefect's state (prefect). Safe to run again: each is created only when absent (psql's \gexec).
-- Run by compose's postgres image on a fresh volume (docker-entrypoint-initdb.d) and by the Job
-- ragtune-init-databases in infra/k8s/init.yaml (ConfigMap ragtune-postgres-init, made of this file).
SELECT 'CREATE DATABASE mlflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')\gexec
SELECT 'CREATE DATABASE mlflow_auth' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow_auth')\gexec
SELECT 'CREATE DATABASE prefect' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'prefect')\gexec
