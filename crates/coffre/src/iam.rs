//! `coffre iam`: identity and access from the command line; today the
//! simulation of a decision, asked of the running server's admin API.

use anyhow::Context as _;

use crate::cli::AdminClient;

#[derive(clap::Subcommand)]
pub enum IamAction {
    /// Decide as the S3 front would: prints allow or deny and the
    /// statements that decided, for the bucket's policy as it is now.
    Simulate {
        /// An access key id, or `anonymous`.
        #[arg(long)]
        principal: String,
        /// `s3:GetObject`, `s3:ListBucket`...
        #[arg(long)]
        action: String,
        /// `arn:aws:s3:::BUCKET` or `arn:aws:s3:::BUCKET/KEY`.
        #[arg(long)]
        resource: String,
        /// A condition key as the request would carry it, `KEY=VALUE`
        /// (`aws:SourceIp=192.0.2.7`, `s3:prefix=reports/`); repeatable.
        #[arg(long = "context", value_parser = key_value)]
        context: Vec<(String, String)>,
        #[arg(long)]
        json: bool,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

pub async fn run(action: IamAction, client: &AdminClient) -> anyhow::Result<()> {
    let IamAction::Simulate { principal, action, resource, context, json } = action;
    let question = coffre_admin::Question { principal, action, resource, context: context.into_iter().collect() };
    let body = serde_json::to_value(&question)?;
    let answer = client.json(http::Method::POST, "/admin/v1/iam/simulate", Some(body)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let answer: coffre_admin::Answer = serde_json::from_value(answer).context("the server's answer")?;
    println!("{}: {}", answer.decision, answer.explanation);
    for statement in &answer.statements {
        println!("  {statement}");
    }
    Ok(())
}
