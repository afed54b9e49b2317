-- Run once by the postgres image on a fresh volume: the databases besides POSTGRES_DB (mlflow).
CREATE DATABASE mlflow_auth;
CREATE DATABASE prefect;
