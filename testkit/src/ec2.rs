//! EC2 straight from the SDK, behind herd's back: resources planted in moto (untagged,
//! or another owner's) before a hostile test, and a check afterwards that reads moto
//! directly to prove nothing foreign was touched.

fn sdk(e: impl std::error::Error) -> String {
    aws_sdk_ec2::error::DisplayErrorContext(e).to_string()
}

/// An SDK client straight to moto (no proxy, no herd), for planting and checking.
pub fn direct_client(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "planter",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// Resources a test made straight in moto, behind herd's back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planted {
    pub instances: Vec<String>,
    pub volumes: Vec<String>,
    pub interfaces: Vec<String>,
    /// Allocation ids.
    pub addresses: Vec<String>,
    pub groups: Vec<String>,
    pub keys: Vec<String>,
}

impl Planted {
    pub fn extend(&mut self, o: Planted) {
        self.instances.extend(o.instances);
        self.volumes.extend(o.volumes);
        self.interfaces.extend(o.interfaces);
        self.addresses.extend(o.addresses);
        self.groups.extend(o.groups);
        self.keys.extend(o.keys);
    }
}

fn spec_tags(kind: aws_sdk_ec2::types::ResourceType, t: &[(&str, &str)]) -> aws_sdk_ec2::types::TagSpecification {
    let mut b = aws_sdk_ec2::types::TagSpecification::builder().resource_type(kind);
    for (k, v) in t {
        b = b.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
    }
    b.build()
}

/// Plants one of each thing reap and down could touch, straight in moto, tagged with
/// `tags` (none: resources herd never made; `herd-owner=bob`: another owner's):
/// a running instance, a free volume, a free network interface, a free Elastic IP, a
/// security group and a key pair, named after `label`.
pub async fn plant(endpoint: &str, region: &str, label: &str, tags: &[(&str, &str)]) -> Result<Planted, String> {
    use aws_sdk_ec2::types::{DomainType, InstanceType, ResourceType};
    let c = direct_client(endpoint, region);
    let mut p = Planted::default();
    let tagged = |k: ResourceType| (!tags.is_empty()).then(|| vec![spec_tags(k, tags)]);

    let image = c
        .describe_images()
        .owners("amazon")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("architecture")
                .values("x86_64")
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("DescribeImages: {}", sdk(e)))?;
    let image = image
        .images()
        .iter()
        .find_map(|i| i.image_id())
        .ok_or("moto has no x86_64 image")?
        .to_string();
    let group = c
        .create_security_group()
        .group_name(format!("{label}-group"))
        .description("planted by a herd test")
        .set_tag_specifications(tagged(ResourceType::SecurityGroup))
        .send()
        .await
        .map_err(|e| format!("CreateSecurityGroup: {}", sdk(e)))?
        .group_id()
        .unwrap_or_default()
        .to_string();
    p.groups.push(group.clone());
    let key = format!("{label}-key");
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETnenGbDQxFMBYXesrtkftI9b8WcHnzAZ8GAjfIUP7h planted";
    c.import_key_pair()
        .key_name(&key)
        .public_key_material(aws_smithy_types::Blob::new(public.as_bytes()))
        .set_tag_specifications(tagged(ResourceType::KeyPair))
        .send()
        .await
        .map_err(|e| format!("ImportKeyPair: {}", sdk(e)))?;
    p.keys.push(key.clone());
    let mut run = c
        .run_instances()
        .image_id(&image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .key_name(&key)
        .security_group_ids(&group)
        .placement(
            aws_sdk_ec2::types::Placement::builder()
                .availability_zone(format!("{region}a"))
                .build(),
        );
    if !tags.is_empty() {
        for k in [
            ResourceType::Instance,
            ResourceType::Volume,
            ResourceType::NetworkInterface,
        ] {
            run = run.tag_specifications(spec_tags(k, tags));
        }
    }
    let r = run.send().await.map_err(|e| format!("RunInstances: {}", sdk(e)))?;
    p.instances
        .extend(r.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)));
    let zone = format!("{region}a");
    let vol = c
        .create_volume()
        .availability_zone(&zone)
        .size(1)
        .set_tag_specifications(tagged(ResourceType::Volume))
        .send()
        .await
        .map_err(|e| format!("CreateVolume: {}", sdk(e)))?;
    p.volumes.push(vol.volume_id().unwrap_or_default().to_string());
    let subnet = c
        .describe_subnets()
        .send()
        .await
        .map_err(|e| format!("DescribeSubnets: {}", sdk(e)))?
        .subnets()
        .iter()
        .find(|s| s.availability_zone() == Some(zone.as_str()))
        .and_then(|s| s.subnet_id())
        .ok_or("moto has no default subnet")?
        .to_string();
    let eni = c
        .create_network_interface()
        .subnet_id(&subnet)
        .set_tag_specifications(tagged(ResourceType::NetworkInterface))
        .send()
        .await
        .map_err(|e| format!("CreateNetworkInterface: {}", sdk(e)))?;
    p.interfaces.push(
        eni.network_interface()
            .and_then(|n| n.network_interface_id())
            .unwrap_or_default()
            .to_string(),
    );
    let eip = c
        .allocate_address()
        .domain(DomainType::Vpc)
        .set_tag_specifications(tagged(ResourceType::ElasticIp))
        .send()
        .await
        .map_err(|e| format!("AllocateAddress: {}", sdk(e)))?;
    p.addresses.push(eip.allocation_id().unwrap_or_default().to_string());
    Ok(p)
}

/// Makes `planted`'s volume, interface and address busy: attached to (associated with)
/// its instance, so a reap that trusts tags and ignores state would delete them in use.
pub async fn make_busy(endpoint: &str, region: &str, planted: &Planted) -> Result<(), String> {
    let c = direct_client(endpoint, region);
    let instance = planted.instances.first().ok_or("nothing planted")?;
    if let Some(v) = planted.volumes.first() {
        c.attach_volume()
            .volume_id(v)
            .instance_id(instance)
            .device("/dev/sdf")
            .send()
            .await
            .map_err(|e| format!("AttachVolume: {}", sdk(e)))?;
    }
    if let Some(n) = planted.interfaces.first() {
        c.attach_network_interface()
            .network_interface_id(n)
            .instance_id(instance)
            .device_index(1)
            .send()
            .await
            .map_err(|e| format!("AttachNetworkInterface: {}", sdk(e)))?;
    }
    if let Some(a) = planted.addresses.first() {
        c.associate_address()
            .allocation_id(a)
            .instance_id(instance)
            .send()
            .await
            .map_err(|e| format!("AssociateAddress: {}", sdk(e)))?;
    }
    Ok(())
}

/// What of `planted` moto no longer has as it was: an instance not running, anything
/// else gone. Empty when nothing was touched.
pub async fn check_planted(endpoint: &str, region: &str, planted: &Planted) -> Vec<String> {
    let c = direct_client(endpoint, region);
    let mut missing = Vec::new();
    for id in &planted.instances {
        let r = c.describe_instances().instance_ids(id).send().await;
        let state = r.ok().and_then(|r| {
            r.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id.as_str()))
                .and_then(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        });
        if state.as_deref() != Some("running") && state.as_deref() != Some("pending") {
            missing.push(format!("instance {id} is {state:?}"));
        }
    }
    for id in &planted.volumes {
        let ok = c.describe_volumes().volume_ids(id).send().await.is_ok_and(|r| {
            r.volumes()
                .iter()
                .any(|v| v.volume_id() == Some(id.as_str()) && v.state().is_some_and(|s| s.as_str() != "deleting"))
        });
        if !ok {
            missing.push(format!("volume {id}"));
        }
    }
    for id in &planted.interfaces {
        let ok = c
            .describe_network_interfaces()
            .network_interface_ids(id)
            .send()
            .await
            .is_ok_and(|r| {
                r.network_interfaces()
                    .iter()
                    .any(|n| n.network_interface_id() == Some(id.as_str()))
            });
        if !ok {
            missing.push(format!("network interface {id}"));
        }
    }
    for id in &planted.addresses {
        let ok = c
            .describe_addresses()
            .allocation_ids(id)
            .send()
            .await
            .is_ok_and(|r| r.addresses().iter().any(|a| a.allocation_id() == Some(id.as_str())));
        if !ok {
            missing.push(format!("address {id}"));
        }
    }
    for id in &planted.groups {
        let ok = c
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .is_ok_and(|r| r.security_groups().iter().any(|g| g.group_id() == Some(id.as_str())));
        if !ok {
            missing.push(format!("security group {id}"));
        }
    }
    for name in &planted.keys {
        let ok = c
            .describe_key_pairs()
            .key_names(name)
            .send()
            .await
            .is_ok_and(|r| r.key_pairs().iter().any(|k| k.key_name() == Some(name.as_str())));
        if !ok {
            missing.push(format!("key pair {name}"));
        }
    }
    missing
}
